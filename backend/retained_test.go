package backend

import (
	"errors"
	"fmt"
	"testing"
)

// TestErrRetained: a retention refusal, wrapped, is both ErrRetained and
// ErrAppendOnly (so callers that keep append-only refusals keep it), is
// permanent and a write refusal; a plain append-only refusal is not
// ErrRetained.
func TestErrRetained(t *testing.T) {
	err := fmt.Errorf("delete data/ab: %w (Object is WORM protected)", ErrRetained)
	if !errors.Is(err, ErrRetained) || !errors.Is(err, ErrAppendOnly) || !IsPermanent(err) || !IsWriteRefused(err) {
		t.Errorf("%v: Is ErrRetained %v, ErrAppendOnly %v, permanent %v, write refused %v", err,
			errors.Is(err, ErrRetained), errors.Is(err, ErrAppendOnly), IsPermanent(err), IsWriteRefused(err))
	}
	if errors.Is(fmt.Errorf("x: %w", ErrAppendOnly), ErrRetained) {
		t.Error("an append-only refusal matches ErrRetained")
	}
}
