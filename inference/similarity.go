package inference

import "math"

// Cosine is the cosine similarity of two embeddings (1 for identical
// directions). Embeddings from Engine.Embed are unit length already.
func Cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// scoreRange is, per embedding model, the cosine mapped to score 0 and the
// cosine mapped to 100 (see SimilarityScore).
func scoreRange(model string) (lo, hi float64) {
	switch model {
	case "faceres":
		// faceres descriptors are non-negative (ReLU6 before pooling), so
		// even unrelated faces have cosines around 0.3-0.5; genuine pairs
		// measured 0.59-0.74 (docs/models.md).
		return 0.3, 0.8
	default:
		return 0, 1
	}
}

// SimilarityScore maps an embedding cosine to glint's 0-100 face
// similarity score: linear from the model's "unrelated" cosine (score 0)
// to a confident-match cosine (score 100), clamped. For faceres, the
// default model: score = 100 * clamp((cos - 0.3) / 0.5, 0, 1), so the
// default threshold 50 is cosine 0.55.
func SimilarityScore(model string, cos float64) float64 {
	lo, hi := scoreRange(model)
	return 100 * clamp((cos-lo)/(hi-lo), 0, 1)
}

// DefaultMatchThreshold is glint's default face-match threshold on the
// similarity score: cosine 0.55 with faceres, the middle of the gap between
// the highest impostor (0.517) and the lowest genuine (0.587) cosine
// measured on the development photos (docs/models.md has the command).
const DefaultMatchThreshold = 50
