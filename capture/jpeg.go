package capture

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
)

// Errors of the JPEG framing helpers.
var (
	errNotJPEG       = errors.New("not a JPEG image: no SOI marker")
	errTruncatedJPEG = errors.New("truncated JPEG: no EOI marker")
)

// jpegLength returns the length of the JPEG image at the start of b, walking
// its marker segments and the entropy-coded data to the EOI marker. It lets a
// source trim a buffer whose bytesused covers more than the image (a stale or
// padded driver buffer) and split a concatenated MJPEG stream without being
// fooled by a thumbnail's EOI inside an APP segment.
func jpegLength(b []byte) (int, error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return 0, errNotJPEG
	}
	i := 2
	for {
		// Skip fill bytes before a marker.
		for i < len(b) && b[i] == 0xFF && i+1 < len(b) && b[i+1] == 0xFF {
			i++
		}
		if i+1 >= len(b) {
			return 0, errTruncatedJPEG
		}
		if b[i] != 0xFF {
			return 0, fmt.Errorf("corrupt JPEG: expected a marker at offset %d", i)
		}
		marker := b[i+1]
		i += 2
		switch {
		case marker == 0xD9: // EOI
			return i, nil
		case marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7): // standalone
			continue
		}
		if i+1 >= len(b) {
			return 0, errTruncatedJPEG
		}
		segLen := int(b[i])<<8 | int(b[i+1])
		if segLen < 2 {
			return 0, fmt.Errorf("corrupt JPEG: segment length %d at offset %d", segLen, i)
		}
		i += segLen
		if i > len(b) {
			return 0, errTruncatedJPEG
		}
		if marker != 0xDA { // not SOS
			continue
		}
		// Entropy-coded data: a 0xFF is either stuffed (FF 00), a restart
		// marker (FF D0..D7) or the next real marker.
		for {
			j := bytes.IndexByte(b[i:], 0xFF)
			if j < 0 || i+j+1 >= len(b) {
				return 0, errTruncatedJPEG
			}
			i += j
			next := b[i+1]
			if next == 0x00 || (next >= 0xD0 && next <= 0xD7) || next == 0xFF {
				i += 1
				if next != 0xFF {
					i++
				}
				continue
			}
			break
		}
	}
}

// hasHuffmanTables reports whether a JPEG defines its Huffman tables (DHT)
// before its first scan. Many UVC cameras send MJPEG without them, relying on
// the standard tables of the AVI1 convention.
func hasHuffmanTables(b []byte) bool {
	i := 2
	for i+3 < len(b) {
		if b[i] != 0xFF {
			return false
		}
		marker := b[i+1]
		if marker == 0xFF {
			i++
			continue
		}
		if marker == 0xC4 {
			return true
		}
		if marker == 0xDA || marker == 0xD9 {
			return false
		}
		if marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7) {
			i += 2
			continue
		}
		i += 2 + (int(b[i+2])<<8 | int(b[i+3]))
	}
	return false
}

// standardDHT is a DHT segment holding the four Huffman tables of ITU-T T.81
// Annex K. It is taken from the standard library's encoder, which writes
// exactly those tables, instead of being transcribed by hand.
var standardDHT = extractStandardDHT()

func extractStandardDHT() []byte {
	var buf bytes.Buffer
	// A colour image, so that the chroma tables are written too.
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		return nil
	}
	b := buf.Bytes()
	i := 2
	for i+3 < len(b) {
		marker := b[i+1]
		n := int(b[i+2])<<8 | int(b[i+3])
		if marker == 0xC4 {
			return append([]byte(nil), b[i:i+2+n]...)
		}
		if marker == 0xDA {
			break
		}
		i += 2 + n
	}
	return nil
}

// withHuffmanTables returns b with the standard tables inserted after SOI when
// it has none, so that image/jpeg can decode camera MJPEG.
func withHuffmanTables(b []byte) []byte {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 || hasHuffmanTables(b) || len(standardDHT) == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+len(standardDHT))
	out = append(out, b[:2]...)
	out = append(out, standardDHT...)
	return append(out, b[2:]...)
}

// decodeJPEG decodes one camera JPEG, supplying standard Huffman tables when
// the frame lacks them.
func decodeJPEG(b []byte) (image.Image, error) {
	img, err := jpeg.Decode(bytes.NewReader(withHuffmanTables(b)))
	if err != nil {
		return nil, fmt.Errorf("decode JPEG: %w", err)
	}
	return img, nil
}
