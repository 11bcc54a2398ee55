// Package hub is glint-hub: it wires the central store (hub/store), the
// embedded MQTT broker (hub/broker), the ingest pipeline (sync/ingest) and
// the HTTP API (hub/api) into one component with New/Run/Close.
//
// The dashboard, webhooks, risk analytics and the provisioning server come
// in later issues and hang off the same store.
package hub
