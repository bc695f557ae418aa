"""Generated Tyk coprocess protocol modules. Do not edit: run `make build`."""
