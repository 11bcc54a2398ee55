package hub

import (
	"bytes"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// copyingStore is the hub client's paho persistence: in memory, like
// paho.MemoryStore, but it keeps packets encoded and hands out a fresh copy
// on every Get. With MemoryStore, a reconnect's resume sets the Dup flag on
// the very packet the previous connection's writer may still be encoding
// (a data race inside paho 1.5.x, eclipse-paho/paho.mqtt.golang#703, seen in
// the broker-restart fault test); a copy cannot be shared.
type copyingStore struct {
	mu   sync.Mutex
	msgs map[string][]byte
}

var _ paho.Store = (*copyingStore)(nil)

func newCopyingStore() *copyingStore { return &copyingStore{msgs: map[string][]byte{}} }

func (s *copyingStore) Open() {}

func (s *copyingStore) Close() {}

// Put encodes m; Publish calls it before the packet reaches the writer.
func (s *copyingStore) Put(key string, m packets.ControlPacket) {
	var b bytes.Buffer
	if err := m.Write(&b); err != nil {
		return // paho's stores drop what they cannot keep, too; the device redelivers
	}
	s.mu.Lock()
	s.msgs[key] = b.Bytes()
	s.mu.Unlock()
}

// Get decodes a fresh packet (nil when absent or undecodable).
func (s *copyingStore) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	b, ok := s.msgs[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	p, err := packets.ReadPacket(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return p
}

func (s *copyingStore) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.msgs))
	for k := range s.msgs {
		keys = append(keys, k)
	}
	return keys
}

func (s *copyingStore) Del(key string) {
	s.mu.Lock()
	delete(s.msgs, key)
	s.mu.Unlock()
}

func (s *copyingStore) Reset() {
	s.mu.Lock()
	s.msgs = map[string][]byte{}
	s.mu.Unlock()
}
