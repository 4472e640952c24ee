package archiver

// Excluder applies backup's exclude patterns to paths alone, with the
// rules of the package documentation ("Exclusions"): for commands that
// leave paths out of snapshots already made (rewrite), so that a pattern
// means there what it means to backup.
type Excluder struct {
	s *selector
}

// NewExcluder compiles excludes, and iexcludes to be matched without
// regard to case. A malformed pattern is an error wrapping ErrPattern.
func NewExcluder(excludes, iexcludes []string) (*Excluder, error) {
	s, err := newSelector(Options{Excludes: excludes, IExcludes: iexcludes})
	if err != nil {
		return nil, err
	}
	return &Excluder{s: s}, nil
}

// Empty reports whether the Excluder has no pattern, and so leaves
// nothing out.
func (x *Excluder) Empty() bool { return len(x.s.lists) == 0 }

// Excluded reports whether the item at the absolute slash-separated path
// p ("/home/u/secret"), a directory when isDir, is left out.
func (x *Excluder) Excluded(p string, isDir bool) bool { return x.s.matchPath(p, isDir) }
