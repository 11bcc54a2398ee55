package capture

import (
	"errors"
	"fmt"
	"sort"

	"github.com/blackjack/webcam"
)

// V4L2 control IDs glint uses (videodev2.h / v4l2-controls.h).
const (
	CIDBrightness              uint32 = 0x00980900
	CIDAutoWhiteBalance        uint32 = 0x0098090c
	CIDExposure                uint32 = 0x00980911
	CIDAutogain                uint32 = 0x00980912
	CIDGain                    uint32 = 0x00980913
	CIDWhiteBalanceTemperature uint32 = 0x0098091a
	CIDExposureAuto            uint32 = 0x009a0901
	CIDExposureAbsolute        uint32 = 0x009a0902
)

// V4L2_CID_EXPOSURE_AUTO menu values.
const (
	exposureAuto             = 0
	exposureManual           = 1
	exposureAperturePriority = 3
)

// ControlInfo describes one camera control.
type ControlInfo struct {
	ID    uint32 `json:"id"`
	Name  string `json:"name"`
	Min   int32  `json:"min"`
	Max   int32  `json:"max"`
	Step  int32  `json:"step"`
	Value int32  `json:"value"`
}

// Controls lists the device's integer, boolean and menu controls with their
// current values.
func (s *V4L2Source) ListControls() ([]ControlInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cam == nil {
		return nil, ErrClosed
	}
	var out []ControlInfo
	for id, c := range s.cam.GetControls() {
		v, err := s.cam.GetControl(id)
		if err != nil && isDeviceGone(err) {
			return nil, s.fail("get control", err)
		}
		out = append(out, ControlInfo{ID: uint32(id), Name: c.Name, Min: c.Min, Max: c.Max, Step: c.Step, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// GetControl reads a control's current value.
func (s *V4L2Source) GetControl(id uint32) (int32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cam == nil {
		return 0, ErrClosed
	}
	if _, ok := s.cam.GetControls()[webcam.ControlID(id)]; !ok {
		return 0, fmt.Errorf("control 0x%08x: %w", id, ErrControlUnsupported)
	}
	v, err := s.cam.GetControl(webcam.ControlID(id))
	if err != nil {
		return 0, s.fail(fmt.Sprintf("get control 0x%08x", id), err)
	}
	return v, nil
}

// SetControl sets a control, checking the value against its range.
func (s *V4L2Source) SetControl(id uint32, value int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setControlLocked(id, value)
}

func (s *V4L2Source) setControlLocked(id uint32, value int32) error {
	if s.cam == nil {
		return ErrClosed
	}
	c, ok := s.cam.GetControls()[webcam.ControlID(id)]
	if !ok {
		return fmt.Errorf("control 0x%08x on %s: %w", id, s.path, ErrControlUnsupported)
	}
	if value < c.Min || value > c.Max {
		return fmt.Errorf("control %q: value %d outside %d..%d", c.Name, value, c.Min, c.Max)
	}
	if err := s.cam.SetControl(webcam.ControlID(id), value); err != nil {
		return s.fail(fmt.Sprintf("set control %q=%d", c.Name, value), err)
	}
	return nil
}

// SetAutoExposure switches automatic exposure. UVC cameras usually offer
// only aperture-priority as their automatic mode, so both are tried.
func (s *V4L2Source) SetAutoExposure(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		return s.setControlLocked(CIDExposureAuto, exposureManual)
	}
	err := s.setControlLocked(CIDExposureAuto, exposureAperturePriority)
	if err == nil || errors.Is(err, ErrControlUnsupported) || errors.Is(err, ErrDeviceLost) {
		return err
	}
	return s.setControlLocked(CIDExposureAuto, exposureAuto)
}

// SetExposure sets the manual exposure (100 µs units for
// exposure_time_absolute; the driver's own units for the plain exposure
// control some sensors have instead).
func (s *V4L2Source) SetExposure(value int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.setControlLocked(CIDExposureAbsolute, value)
	if errors.Is(err, ErrControlUnsupported) {
		return s.setControlLocked(CIDExposure, value)
	}
	return err
}

// SetAutoWhiteBalance switches automatic white balance.
func (s *V4L2Source) SetAutoWhiteBalance(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := int32(0)
	if on {
		v = 1
	}
	return s.setControlLocked(CIDAutoWhiteBalance, v)
}

// SetWhiteBalanceTemperature sets the manual white balance in kelvin.
func (s *V4L2Source) SetWhiteBalanceTemperature(kelvin int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setControlLocked(CIDWhiteBalanceTemperature, kelvin)
}

var _ Controls = (*V4L2Source)(nil)
