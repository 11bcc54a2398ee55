// Package link is glintd's MQTT connection to the hub, on
// github.com/eclipse/paho.mqtt.golang.
//
// The link drains the outbox: it publishes queued envelopes on
// <prefix>/<device>/result at QoS 1, at most Window of them awaiting a
// receipt, and deletes an entry only when the hub's signed receipt for that
// seq and record ID arrives on <prefix>/<device>/receipt and verifies with
// the pinned hub key. A PUBACK, or a publish token that completed, proves
// nothing: paho can complete a token across a disconnect, and a hub can
// crash after the broker acknowledged. So after every reconnect the link
// starts again from the oldest queued entry, and an entry without a receipt
// for RedeliverAfter is published again; the hub deduplicates by record ID
// and receipts duplicates again.
//
// The MQTT session is persistent (clean session off, client ID = device
// ID), so receipts the hub publishes while the device is away are queued by
// the broker. The Last Will is "offline" on the retained status topic;
// "online" with queue statistics is published there on every connect, every
// StatusInterval and whenever the outbox alarm changes. Reconnection uses
// exponential backoff with ±20 % jitter so that a fleet restarted together
// spreads out.
//
// One goroutine (Run's) owns all state. paho's callbacks never block: they
// hand the message to that goroutine over a buffered channel, dropping (and
// counting) when it is full, which is safe because a lost receipt only
// causes a redelivery and another receipt.
package link
