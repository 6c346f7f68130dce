// Package testfs gives tests file systems they can fill: a private tmpfs
// and a ballast file that leaves a chosen number of bytes free. The fault
// tests of the store and of the daemon process use it (SPEC section 10).
package testfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// MountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it when the test ends. The tests run as root: a failed mount fails the
// test, never skips it.
func MountTmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs on %s (the fault tests need root): %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// FillDisk appends zeros to the file dir/ballast until about free bytes
// are left free on dir's file system, and returns its path.
func FillDisk(t testing.TB, dir string, free int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "ballast")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := int64(st.Bavail)*st.Bsize - free; n > 0 {
		if _, err := f.Write(make([]byte, n)); err != nil {
			t.Fatalf("writing %d bytes of ballast: %v", n, err)
		}
	}
	return name
}
