// Package ingest is the hub side of the wire: it takes envelopes as they
// arrive from the broker, verifies them against the device registry, stores
// them in batches and publishes the hub's signed receipts.
//
// For each envelope on <prefix>/<device>/result, in order:
//
//  1. decode (size limit, CBOR, pinned algorithm, kid; envelope package);
//  2. look the kid up in the registry: unknown or revoked devices are
//     rejected;
//  3. verify the signature with the registered key;
//  4. decode and validate the record; its device_id must be the registered
//     device's and the topic's;
//  5. reject created_at more than MaxFutureSkew ahead of the hub's clock;
//  6. batch the record; Store.Commit dedups by record ID (a unique key),
//     enforces per-device seq (reused seq, or far older than the newest
//     stored: a replay) and commits BatchSize records, or whatever arrived
//     within BatchWait, in one transaction;
//  7. after the commit, publish a receipt signed by the hub key to
//     <prefix>/<device>/receipt: "stored", "duplicate" (a redelivery: it is
//     receipted again, never stored twice) or "rejected".
//
// Every rejection is counted (glint_ingest_rejected_total{reason}) and kept
// in the quarantine table with its reason and raw bytes; nothing on the wire
// can stop the hub. Only envelopes whose signature verified get a receipt
// (a "rejected" one for rule violations, so that the device stops
// resending what the hub holds in quarantine): a receipt for an unverified
// envelope would let anyone who can publish make a device delete an
// undelivered result by forging its record ID.
package ingest
