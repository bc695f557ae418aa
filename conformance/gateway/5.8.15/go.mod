// Tyk Gateway 5.8.15 built from its Go module, for the conformance suite (make gateway).
// Tyk's module path has no /v5 suffix, so the release is required by its commit (a pseudo-version).
module tyk-inspector/conformance/gateway

go 1.25.0

// The release's own GODEBUG settings (they apply to the main module only).
godebug (
	tls10server=1
	tls3des=1
	tlsrsakex=1
	tlsunsafeekm=1
	x509keypairleaf=0
	x509negativeserial=1
)

require github.com/TykTechnologies/tyk v0.0.0-20260630105001-301579e685f8b1

// The release's own replace lines (a dependency's replace directives do not apply to us).
replace go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp v0.54.0 => go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp v0.49.0

replace github.com/getkin/kin-openapi => github.com/TykTechnologies/kin-openapi v0.92.0
