package hub

import (
	"slices"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// TestCopyingStore: what Get returns is an equal packet that the store does
// not share, so marking it Dup (paho's resume does) leaves the stored one
// and any earlier copy untouched.
func TestCopyingStore(t *testing.T) {
	s := newCopyingStore()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Qos, p.MessageID, p.Payload = "glint/v1/dev/receipt", 1, 7, []byte("receipt")
	s.Put("o.7", p)
	a, ok := s.Get("o.7").(*packets.PublishPacket)
	if !ok || a == p || a.TopicName != p.TopicName || a.MessageID != 7 || a.Qos != 1 || string(a.Payload) != "receipt" {
		t.Fatalf("Get = %#v, want an equal copy of %#v", a, p)
	}
	a.Dup = true
	if b := s.Get("o.7").(*packets.PublishPacket); b.Dup || b == a {
		t.Fatal("a change to one copy reached the store")
	}
	if got := s.All(); !slices.Equal(got, []string{"o.7"}) {
		t.Fatalf("All = %v", got)
	}
	s.Del("o.7")
	if s.Get("o.7") != nil || len(s.All()) != 0 {
		t.Fatal("Del left the packet")
	}
	s.Put("o.8", p)
	s.Reset()
	if len(s.All()) != 0 {
		t.Fatal("Reset left packets")
	}
}
