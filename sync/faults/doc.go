// Package faults holds glint's fault-injection suite for the wire (build
// tag "faults"; run by `make test-faults`, part of `make test`):
//
//	(a) kill9-publisher: the publishing device process is killed with
//	    SIGKILL at random points, 50 times, while it produces results;
//	(b) broker-restart: the MQTT broker (a private Mosquitto) is killed and
//	    restarted mid-stream;
//	(c) kill9-hub: glint-hub is killed with SIGKILL mid-batch and restarted;
//	(d) offline-10k: 10,000 results accumulate offline, then the devices
//	    connect.
//
// After each, every result a kiosk was told about (its outbox Put returned)
// must be in the hub store exactly once with a valid signature, and every
// outbox must be empty. Each scenario prints
//
//	faults: scenario=NAME trials=N told=N stored=N lost=N duplicated=N
//
// and fails unless lost and duplicated are 0.
package faults
