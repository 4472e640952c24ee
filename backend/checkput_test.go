package backend

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// fakeContent is content whose Length and Rewind say what the test wants.
type fakeContent struct {
	io.Reader
	length    int64
	rewindErr error
	rewound   bool
}

func (r *fakeContent) Length() int64 { return r.length }
func (r *fakeContent) Rewind() error {
	r.rewound = r.rewindErr == nil
	return r.rewindErr
}

func TestCheckPut(t *testing.T) {
	h := Handle{Type: ConfigFile, Name: ConfigName}
	ctx := context.Background()

	rd := &fakeContent{Reader: strings.NewReader("abc"), length: 3}
	if size, err := CheckPut(ctx, h, rd); err != nil || size != 3 || !rd.rewound {
		t.Errorf("good content: size %d, rewound %v, %v", size, rd.rewound, err)
	}

	rd = &fakeContent{length: -1}
	if _, err := CheckPut(ctx, h, rd); err == nil || !IsPermanent(err) || err.Error() != "put config: negative length -1" {
		t.Errorf("negative length: %v (permanent %v)", err, IsPermanent(err))
	}

	broken := errors.New("tape jammed")
	rd = &fakeContent{length: 3, rewindErr: broken}
	if _, err := CheckPut(ctx, h, rd); !errors.Is(err, broken) || IsPermanent(err) || err.Error() != "put config: rewind: tape jammed" {
		t.Errorf("failed rewind: %v", err)
	}

	if _, err := CheckPut(ctx, Handle{Type: ConfigFile, Name: "other"}, &fakeContent{length: 3}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("invalid handle: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	rd = &fakeContent{length: 3}
	if _, err := CheckPut(cancelled, h, rd); !errors.Is(err, context.Canceled) || rd.rewound {
		t.Errorf("cancelled: %v, rewound %v", err, rd.rewound)
	}
}
