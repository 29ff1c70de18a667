module github.com/firebreak-dev/firebreak

go 1.26.8

require cuelang.org/go v0.17.1

require (
	github.com/cockroachdb/apd/v3 v3.2.3 // indirect
	github.com/rogpeppe/go-internal v1.16.0 // indirect
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)
