package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Saved destinations: the places `cairn mirror` copies the repository to
// when given none, kept in the repository itself (a meta record of kind
// "destinations", sealed with the repository key), so a machine that
// restores the repository, from any copy, finds them. Each record holds
// the whole list; the newest record is the list. Two devices changing the
// list at once: the later record wins (docs/design.md, Meta records).

// MetaDestinations is the meta record kind of the saved destinations.
const MetaDestinations = "destinations"

// MaxDestinations bounds the saved destinations.
const MaxDestinations = 64

// maxDestinationName and maxDestinationLocation bound a destination's
// fields.
const (
	maxDestinationName     = 64
	maxDestinationLocation = 1024
)

// ErrDestination: a destination name, location or list is not valid, or
// a name is unknown or taken.
var ErrDestination = errors.New("invalid destination")

// Destination is one saved mirror destination.
type Destination struct {
	// Name is how commands refer to it: 1 to 64 characters of a-z, 0-9,
	// '.', '_' and '-', starting with a letter or digit.
	Name string `json:"name"`
	// Location is where it is, as -r takes it (a peer location pins the
	// server's peer ID). It never holds a password.
	Location string `json:"location"`
}

// ValidDestinationName checks a destination's name.
func ValidDestinationName(name string) error {
	if name == "" || len(name) > maxDestinationName {
		return fmt.Errorf("%w: a name must be 1 to %d characters", ErrDestination, maxDestinationName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return fmt.Errorf("%w: name %q: only a-z, 0-9, '.', '_' and '-', starting with a letter or digit", ErrDestination, name)
		}
	}
	return nil
}

func validDestinationLocation(loc string) error {
	if loc == "" || len(loc) > maxDestinationLocation || !utf8.ValidString(loc) {
		return fmt.Errorf("%w: a location must be 1 to %d bytes of UTF-8", ErrDestination, maxDestinationLocation)
	}
	for _, r := range loc {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: location with a control character", ErrDestination)
		}
	}
	return nil
}

// destinationsJSON is the payload of a destinations record.
type destinationsJSON struct {
	Version      int           `json:"version"`
	Destinations []Destination `json:"destinations"`
}

// EncodeDestinations returns the payload of a destinations record.
func EncodeDestinations(list []Destination) ([]byte, error) {
	if err := checkDestinations(list); err != nil {
		return nil, err
	}
	if list == nil {
		list = []Destination{}
	}
	return json.Marshal(destinationsJSON{Version: 1, Destinations: list})
}

// DecodeDestinations parses the payload of a destinations record; every
// failure wraps ErrDestination.
func DecodeDestinations(payload []byte) ([]Destination, error) {
	var j destinationsJSON
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDestination, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the list", ErrDestination)
	}
	if j.Version != 1 {
		return nil, fmt.Errorf("%w: list version %d", ErrDestination, j.Version)
	}
	if err := checkDestinations(j.Destinations); err != nil {
		return nil, err
	}
	if j.Destinations == nil {
		j.Destinations = []Destination{}
	}
	return j.Destinations, nil
}

func checkDestinations(list []Destination) error {
	if len(list) > MaxDestinations {
		return fmt.Errorf("%w: %d destinations, at most %d", ErrDestination, len(list), MaxDestinations)
	}
	names := make(map[string]bool, len(list))
	for _, d := range list {
		if err := ValidDestinationName(d.Name); err != nil {
			return err
		}
		if err := validDestinationLocation(d.Location); err != nil {
			return fmt.Errorf("destination %s: %w", d.Name, err)
		}
		if names[d.Name] {
			return fmt.Errorf("%w: %s is named twice", ErrDestination, d.Name)
		}
		names[d.Name] = true
	}
	return nil
}

// Destinations returns the saved destinations, in the order they were
// added; none saved is an empty list.
func (r *Repository) Destinations(ctx context.Context) ([]Destination, error) {
	recs, err := r.LoadMeta(ctx, MetaDestinations)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return []Destination{}, nil
	}
	list, err := DecodeDestinations(recs[0].Payload)
	if err != nil {
		return nil, fmt.Errorf("saved destinations (meta/%s): %w", recs[0].ID.Str(), err)
	}
	return list, nil
}

// AddDestination saves d after the saved destinations. A name or a
// location already saved is refused.
func (r *Repository) AddDestination(ctx context.Context, d Destination) error {
	list, err := r.Destinations(ctx)
	if err != nil {
		return err
	}
	for _, o := range list {
		if o.Name == d.Name {
			return fmt.Errorf("%w: %s is saved already (as %s); remove it first", ErrDestination, d.Name, o.Location)
		}
		if o.Location == d.Location {
			return fmt.Errorf("%w: %s is saved already, as %s", ErrDestination, d.Location, o.Name)
		}
	}
	return r.saveDestinations(ctx, append(list, d))
}

// RemoveDestination removes the saved destination name and returns it.
func (r *Repository) RemoveDestination(ctx context.Context, name string) (Destination, error) {
	list, err := r.Destinations(ctx)
	if err != nil {
		return Destination{}, err
	}
	for i, d := range list {
		if d.Name == name {
			return d, r.saveDestinations(ctx, append(list[:i:i], list[i+1:]...))
		}
	}
	return Destination{}, fmt.Errorf("%w: no destination named %q is saved", ErrDestination, name)
}

func (r *Repository) saveDestinations(ctx context.Context, list []Destination) error {
	payload, err := EncodeDestinations(list)
	if err != nil {
		return err
	}
	if _, err := r.SaveMeta(ctx, MetaDestinations, payload); err != nil {
		return fmt.Errorf("save the destinations: %w", err)
	}
	return nil
}
