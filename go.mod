module github.com/glintdev/glint

go 1.26.8

require (
	github.com/blackjack/webcam v0.6.1 // indirect
	github.com/coreos/go-systemd/v22 v22.7.0 // indirect
	github.com/prometheus/client_golang v1.23.2 // indirect
	golang.org/x/sys v0.38.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
