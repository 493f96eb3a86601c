//go:build !unix

package atomicfile

import (
	"errors"
	"os"
)

var errRemoved = errors.New("temp removed before it was locked")

// hold does not lock where flock(2) does not exist; RemoveStale then
// removes nothing.
func hold(*os.File, string) (*Hold, error) { return &Hold{}, nil }

func removeIfStale(string, bool) bool { return false }
