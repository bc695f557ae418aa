"""Where captures are kept: the ring buffer in memory, or Redis shared by replicas; each says what it adds."""
