package capture

import (
	"bytes"
	"errors"
	"image/jpeg"
	"testing"
)

// stripDHT removes every DHT segment, as UVC cameras send MJPEG.
func stripDHT(t testing.TB, b []byte) []byte {
	t.Helper()
	out := append([]byte(nil), b[:2]...)
	i := 2
	for i+3 < len(b) {
		marker := b[i+1]
		n := int(b[i+2])<<8 | int(b[i+3])
		if marker == 0xDA {
			return append(out, b[i:]...)
		}
		if marker != 0xC4 {
			out = append(out, b[i:i+2+n]...)
		}
		i += 2 + n
	}
	t.Fatal("no SOS in test JPEG")
	return nil
}

func TestJPEGLength(t *testing.T) {
	img, _ := testJPEG(t, 40, 30)
	n, err := jpegLength(img)
	if err != nil || n != len(img) {
		t.Fatalf("jpegLength = %d, %v; want %d", n, err, len(img))
	}
	// A padded driver buffer (bytesused = whole buffer) is trimmed.
	padded := append(append([]byte(nil), img...), make([]byte, 4096)...)
	if n, err := jpegLength(padded); err != nil || n != len(img) {
		t.Fatalf("padded: %d, %v", n, err)
	}
	cases := map[string][]byte{
		"empty":      nil,
		"not jpeg":   []byte("hello world"),
		"truncated":  img[:len(img)/2],
		"no eoi":     img[:len(img)-2],
		"bad seglen": {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01},
	}
	for name, b := range cases {
		if _, err := jpegLength(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestJPEGLengthIgnoresThumbnailEOI(t *testing.T) {
	img, _ := testJPEG(t, 16, 16)
	thumb, _ := testJPEG(t, 8, 8)
	// APP1 segment carrying a whole JPEG (with its own EOI), as EXIF does.
	seg := []byte{0xFF, 0xE1, byte((len(thumb) + 2) >> 8), byte(len(thumb) + 2)}
	b := append([]byte{0xFF, 0xD8}, seg...)
	b = append(b, thumb...)
	b = append(b, img[2:]...)
	n, err := jpegLength(b)
	if err != nil || n != len(b) {
		t.Fatalf("jpegLength = %d, %v; want %d", n, err, len(b))
	}
}

func TestMissingHuffmanTablesAreSupplied(t *testing.T) {
	img, _ := testJPEG(t, 64, 48)
	bare := stripDHT(t, img)
	if hasHuffmanTables(bare) {
		t.Fatal("stripDHT left a DHT")
	}
	if _, err := jpeg.Decode(bytes.NewReader(bare)); err == nil {
		t.Fatal("the standard library decoded a JPEG without Huffman tables; test premise broken")
	}
	if len(standardDHT) == 0 {
		t.Fatal("standard DHT not extracted")
	}
	got, _, _, err := MJPEGToRGB(nil, bare)
	if err != nil {
		t.Fatalf("decode without DHT: %v", err)
	}
	want, _, _, err := MJPEGToRGB(nil, img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("image decoded with supplied standard tables differs from the original")
	}
}

func FuzzJPEGLength(f *testing.F) {
	img, _ := testJPEG(f, 16, 16)
	f.Add(img)
	f.Add(stripDHT(f, img))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := jpegLength(b)
		if err == nil && (n < 4 || n > len(b)) {
			t.Fatalf("length %d out of range for %d bytes", n, len(b))
		}
		// Decoding arbitrary bytes must fail cleanly, never panic.
		if _, _, _, err := MJPEGToRGB(nil, b); err != nil && !errors.Is(err, ErrBadFrame) {
			t.Fatalf("error not wrapped as ErrBadFrame: %v", err)
		}
	})
}
