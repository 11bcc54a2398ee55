package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // face photos
	_ "image/png"  // face photos
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNoFace: a photo or a folder holds no usable face.
var ErrNoFace = errors.New("no usable face")

// Face is one face photo prepared for rendering: a crop around the face in
// linear light, with the face box inside it.
type Face struct {
	// Name identifies the photo (path, plus #N for the N-th face of a
	// group photo).
	Name string
	// W, H are the crop's size; Lin holds its linear RGB, row-major.
	W, H int
	Lin  [3][]float32
	// Box is the face box in crop pixels: brow to chin, cheek to cheek.
	Box Box
}

// Box is an axis-aligned rectangle in (sub)pixels.
type Box struct{ X, Y, W, H float64 }

// faceCropWidth is the face-box width a crop is scaled to: enough detail for
// a 640x480 frame at the closest distance without keeping whole photos.
const faceCropWidth = 160

// registryFaces are the face boxes (fractions of the image size) of the
// registry photos `make deps` fetches (scripts/faces.sh), keyed by the
// file's SHA-256. The face-api demo photos are group pictures, where the
// simple skin detector below cannot separate people, so each face is listed.
// The boxes follow the relief's anchors (scene.go): cheek to cheek (facemesh
// points 234 and 454), chin (152) at the bottom, the eye centres 0.36 of the
// height below the top. They were measured with the project's facemesh
// (`glintctl faces detect` finds the same faces); the hand-placed boxes
// they replace sat on the hair of several faces (IoU 0.27-0.87).
var registryFaces = map[string][]Box{
	// @vladmandic/face-api demo/sample1.jpg .. sample6.jpg (pixels of the 1920-px-wide originals)
	"8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51": pixelBoxes(1920, 1280, [4]float64{439, 385, 162, 210}, [4]float64{876, 470, 144, 173}, [4]float64{1524, 264, 121, 130}),
	"7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691": pixelBoxes(1920, 1367, [4]float64{1473, 199, 170, 188}),
	"8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936": pixelBoxes(1920, 1350, [4]float64{600, 343, 197, 254}, [4]float64{1088, 236, 212, 265}, [4]float64{1473, 323, 201, 245}),
	"729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc": pixelBoxes(1920, 1448, [4]float64{687, 105, 147, 176}, [4]float64{1003, 212, 161, 205}, [4]float64{1302, 187, 142, 185}),
	"6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938": pixelBoxes(1920, 1398, [4]float64{778, 126, 157, 206}, [4]float64{1119, 216, 177, 221}, [4]float64{1432, 416, 179, 244}),
	"9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87": pixelBoxes(1920, 1537, [4]float64{250, 517, 208, 242}, [4]float64{694, 360, 185, 257}, [4]float64{1167, 349, 195, 229}, [4]float64{1493, 292, 200, 261}),
	// opencv-doc examples/data/messi5.jpg (548x342): a small face.
	"1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9": pixelBoxes(548, 342, [4]float64{225, 94, 29, 39}),
	// python3-skimage data/astronaut.png (512x512).
	"88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5": pixelBoxes(512, 512, [4]float64{179, 63, 92, 113}),
}

// registryUnused are faces of the registry photos that are not listed in
// registryFaces (turned too far, or blurred), keyed the same way: they are
// only blanked in the crops of the listed faces (BlazeFace boxes, pixels).
var registryUnused = map[string][]Box{
	// face-api sample2.jpg: a face turned 54° and a blurred one.
	"7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691": {{356, 186, 207, 207}, {871, 254, 202, 203}},
	// face-api sample5.jpg: a face turned 31°.
	"6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938": {{570, 455, 197, 197}},
}

// pixelBoxes converts boxes in pixels of a w x h image to fractions.
func pixelBoxes(w, h float64, boxes ...[4]float64) []Box {
	out := make([]Box, len(boxes))
	for i, b := range boxes {
		out[i] = Box{b[0] / w, b[1] / h, b[2] / w, b[3] / h}
	}
	return out
}

// sidecar is <photo>.face.json: face boxes in pixels, which override
// detection for photos the skin detector gets wrong.
type sidecar struct {
	Faces [][4]float64 `json:"faces"`
}

// LoadFaces loads every usable face from the folders (any layout, JPEG and
// PNG). A photo is usable when it has annotated face boxes (registry table or
// sidecar) or when the skin detector finds exactly one face in it. Each
// folder must yield at least one face.
func LoadFaces(dirs []string) ([]*Face, error) {
	var out []*Face
	for _, dir := range dirs {
		n0 := len(out)
		var looked int
		var reasons []string
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".jpg", ".jpeg", ".png":
			default:
				return nil
			}
			looked++
			faces, err := LoadFace(path)
			if err != nil {
				if len(reasons) < 3 {
					reasons = append(reasons, err.Error())
				}
				return nil
			}
			out = append(out, faces...)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("faces %s: %w", dir, err)
		}
		if len(out) == n0 {
			msg := fmt.Sprintf("faces %s: %v: none of %d JPEG/PNG images has exactly one detectable face", dir, ErrNoFace, looked)
			if len(reasons) > 0 {
				msg += " (" + strings.Join(reasons, "; ") + ")"
			}
			return nil, errors.New(msg)
		}
	}
	return out, nil
}

// LoadFace decodes one photo and returns its faces.
func LoadFace(path string) ([]*Face, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("face %s: %w", path, err)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("face %s: decode: %w", path, err)
	}
	bw, bh := float64(img.Bounds().Dx()), float64(img.Bounds().Dy())
	var boxes []Box
	sum := sha256.Sum256(b)
	var unused []Box
	if rel, ok := registryFaces[hex.EncodeToString(sum[:])]; ok {
		for _, r := range rel {
			boxes = append(boxes, Box{r.X * bw, r.Y * bh, r.W * bw, r.H * bh})
		}
		unused = registryUnused[hex.EncodeToString(sum[:])]
	} else if sb, err := os.ReadFile(path + ".face.json"); err == nil {
		var sc sidecar
		dec := json.NewDecoder(bytes.NewReader(sb))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sc); err != nil {
			return nil, fmt.Errorf("face %s.face.json: %w", path, err)
		}
		for _, f := range sc.Faces {
			boxes = append(boxes, Box{f[0], f[1], f[2], f[3]})
		}
	} else {
		box, err := detectSkinFace(img)
		if err != nil {
			return nil, fmt.Errorf("face %s: %w", path, err)
		}
		boxes = []Box{box}
	}
	// Converted once: a group photo's faces share it.
	rgba := toRGBA(img)
	var out []*Face
	for i, box := range boxes {
		if box.W < 12 || box.H < 12 {
			return nil, fmt.Errorf("face %s: face %d is %.0fx%.0f px: %w (too small)", path, i, box.W, box.H, ErrNoFace)
		}
		name := path
		if len(boxes) > 1 {
			name = fmt.Sprintf("%s#%d", path, i)
		}
		others := append([]Box(nil), unused...)
		for j, o := range boxes {
			if j != i {
				others = append(others, o)
			}
		}
		out = append(out, cropFace(name, rgba, box, others))
	}
	return out, nil
}

// blankMargin is how far beyond a face box (fraction of its size, each
// side) the other faces of a group photo are blanked: forehead, hair and
// chin, so that no detector finds a face there.
const blankMargin = 0.2

// blank is a region of the photo painted over with one colour.
type blank struct {
	x0, y0, x1, y1 float64
	lin            [3]float32
}

// blanks paints over the other faces of a group photo with the mean colour
// around each. Pasted on the simulated background wall at the user's size
// they would be faces a real kiosk never sees beside the user, and the
// locator would sometimes follow one of them.
func blanks(rgba *image.RGBA, others []Box) []blank {
	var out []blank
	b := rgba.Bounds()
	for _, o := range others {
		bl := blank{x0: o.X - blankMargin*o.W, y0: o.Y - blankMargin*o.H, x1: o.X + (1+blankMargin)*o.W, y1: o.Y + (1+blankMargin)*o.H}
		// The mean of the rectangle's outline, in linear light.
		var sum [3]float32
		var n float32
		add := func(x, y float64) {
			px := min(max(int(x), b.Min.X), b.Max.X-1)
			py := min(max(int(y), b.Min.Y), b.Max.Y-1)
			off := rgba.PixOffset(px, py)
			for c := 0; c < 3; c++ {
				sum[c] += srgbToLinear[rgba.Pix[off+c]]
			}
			n++
		}
		for t := 0.0; t <= 1; t += 1.0 / 64 {
			add(bl.x0+t*(bl.x1-bl.x0), bl.y0)
			add(bl.x0+t*(bl.x1-bl.x0), bl.y1)
			add(bl.x0, bl.y0+t*(bl.y1-bl.y0))
			add(bl.x1, bl.y0+t*(bl.y1-bl.y0))
		}
		for c := range bl.lin {
			bl.lin[c] = sum[c] / n
		}
		out = append(out, bl)
	}
	return out
}

// cropFace resamples a region of 4 face widths by 4 face heights around the
// box to faceCropWidth per face width, in linear light, with the other
// faces of the photo blanked (outside the box itself).
func cropFace(name string, rgba *image.RGBA, box Box, others []Box) *Face {
	s := faceCropWidth / box.W
	cw, ch := int(4*box.W*s), int(4*box.H*s)
	x0, y0 := box.X+box.W/2-2*box.W, box.Y+box.H/2-2*box.H
	f := &Face{Name: name, W: cw, H: ch, Box: Box{(box.X - x0) * s, (box.Y - y0) * s, box.W * s, box.H * s}}
	for c := range f.Lin {
		f.Lin[c] = make([]float32, cw*ch)
	}
	b := rgba.Bounds()
	bls := blanks(rgba, others)
	inBox := func(x, y float64) bool { return x >= box.X && x < box.X+box.W && y >= box.Y && y < box.Y+box.H }
	for y := 0; y < ch; y++ {
		sy := y0 + (float64(y)+0.5)/s - 0.5
	pixels:
		for x := 0; x < cw; x++ {
			sx := x0 + (float64(x)+0.5)/s - 0.5
			if !inBox(sx, sy) {
				for _, bl := range bls {
					if sx >= bl.x0 && sx < bl.x1 && sy >= bl.y0 && sy < bl.y1 {
						for c := 0; c < 3; c++ {
							f.Lin[c][y*cw+x] = bl.lin[c]
						}
						continue pixels
					}
				}
			}
			// Bilinear on a clamped grid; box filtering when shrinking is
			// unnecessary at these scales for a simulation.
			ix, iy := math.Floor(sx), math.Floor(sy)
			fx, fy := float32(sx-ix), float32(sy-iy)
			var acc [3]float32
			for k := 0; k < 4; k++ {
				px, py := int(ix)+k&1, int(iy)+k>>1
				px = min(max(px, b.Min.X), b.Max.X-1)
				py = min(max(py, b.Min.Y), b.Max.Y-1)
				w := (1 - fx) * (1 - fy)
				switch k {
				case 1:
					w = fx * (1 - fy)
				case 2:
					w = (1 - fx) * fy
				case 3:
					w = fx * fy
				}
				o := rgba.PixOffset(px, py)
				for c := 0; c < 3; c++ {
					acc[c] += w * srgbToLinear[rgba.Pix[o+c]]
				}
			}
			for c := 0; c < 3; c++ {
				f.Lin[c][y*cw+x] = acc[c]
			}
		}
	}
	return f
}

func toRGBA(img image.Image) *image.RGBA {
	if m, ok := img.(*image.RGBA); ok {
		return m
	}
	b := img.Bounds()
	m := image.NewRGBA(b)
	draw.Draw(m, b, img, b.Min, draw.Src) // fast paths for YCbCr and paletted images
	return m
}

// detectSkinFace finds a face box by skin colour, the documented stop-gap
// until the landmark model is wired in: pixels whose chroma lies in the skin
// cluster (Cb 77–127, Cr 133–173, the classic Chai & Ngan bounds) on a
// ≤160-px thumbnail, 4-connected components, and the components that are
// face-shaped (aspect 0.8–2.6, ≥45% filled, ≥1% of the image). Exactly one
// such component, or one clearly larger than any other, is a face; the box
// is cut to 1.3x its width to drop the neck.
func detectSkinFace(img image.Image) (Box, error) {
	b := img.Bounds()
	step := max(1, max(b.Dx(), b.Dy())/160)
	w, h := b.Dx()/step, b.Dy()/step
	skin := make([]bool, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, bb, _ := img.At(b.Min.X+x*step, b.Min.Y+y*step).RGBA()
			R, G, B := float64(r>>8), float64(g>>8), float64(bb>>8)
			Y := 0.299*R + 0.587*G + 0.114*B
			cb := 128 - 0.168736*R - 0.331264*G + 0.5*B
			cr := 128 + 0.5*R - 0.418688*G - 0.081312*B
			skin[y*w+x] = Y > 50 && cb >= 77 && cb <= 127 && cr >= 133 && cr <= 173
		}
	}
	type comp struct {
		area           int
		x0, y0, x1, y1 int
	}
	var comps []comp
	seen := make([]bool, w*h)
	stack := []int{}
	for i := range skin {
		if !skin[i] || seen[i] {
			continue
		}
		c := comp{x0: w, y0: h, x1: -1, y1: -1}
		seen[i] = true
		stack = append(stack[:0], i)
		for len(stack) > 0 {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := j%w, j/w
			c.area++
			c.x0, c.y0, c.x1, c.y1 = min(c.x0, x), min(c.y0, y), max(c.x1, x), max(c.y1, y)
			for _, n := range [4]int{j - 1, j + 1, j - w, j + w} {
				if n < 0 || n >= len(skin) || seen[n] || !skin[n] {
					continue
				}
				if (n == j-1 && x == 0) || (n == j+1 && x == w-1) {
					continue
				}
				seen[n] = true
				stack = append(stack, n)
			}
		}
		cw, ch := c.x1-c.x0+1, c.y1-c.y0+1
		aspect := float64(ch) / float64(cw)
		fill := float64(c.area) / float64(cw*ch)
		if c.area*100 >= w*h && aspect >= 0.8 && aspect <= 2.6 && fill >= 0.45 {
			comps = append(comps, c)
		}
	}
	if len(comps) == 0 {
		return Box{}, fmt.Errorf("%w: no face-shaped skin region (add a .face.json sidecar)", ErrNoFace)
	}
	sort.Slice(comps, func(i, j int) bool { return comps[i].area > comps[j].area })
	if len(comps) > 1 && comps[1].area*2 > comps[0].area {
		return Box{}, fmt.Errorf("%w: %d face-sized skin regions, want one (add a .face.json sidecar)", ErrNoFace, len(comps))
	}
	c := comps[0]
	bw := float64(c.x1-c.x0+1) * float64(step)
	bh := math.Min(float64(c.y1-c.y0+1)*float64(step), 1.3*bw)
	return Box{float64(b.Min.X + c.x0*step), float64(b.Min.Y + c.y0*step), bw, bh}, nil
}
