// The Tyk Gateway binary the conformance suite runs: the gateway's own entry point, nothing added.
package main

import "github.com/TykTechnologies/tyk/gateway"

func main() {
	gateway.Start()
}
