package embedded

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2/batchrepr"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// Damaged logs (SPEC 10: stored data that fails its checksums at start is
// never silently dropped).
//
// Pebble replays the newest log up to its first record that does not read
// back whole, and drops the rest without a word: there it cannot tell a
// torn tail (a write that was never acknowledged, its sync cut short by a
// crash) from a damaged record followed by acknowledged ones, unless a
// later record says that it was written after a sync past the damage,
// which the last group of synced writes never has (older logs must end
// cleanly, and pebble refuses them itself). checkNewestLog tells the two
// apart before pebble opens: a torn tail has no valid record of the log
// after the damage (the rest of the log is zeros, pebble's preallocation
// and walFile's, or the old content of a recycled log, which carries
// another log number); a damaged record has. Then the store refuses to
// start, naming the log, the offset, the sessions the records that follow
// hold, and what the operator can do.
//
// The log's chunk format is pebble's record package (record.go): blocks of
// 32 KiB holding chunks, each with a header of a masked CRC-32C (over the
// encoding byte to the end of the payload), a 2-byte length, an encoding
// byte, and in the recyclable and WAL-sync formats the 4-byte log number
// (and an 8-byte synced offset); a record is one full chunk or a first,
// middle..., last sequence.

const (
	logBlockSize  = 32 << 10
	legacyHeader  = 7
	walSyncHeader = 19
)

// chunkEncoding describes pebble's chunk encoding byte e: the header size,
// and the position of the chunk in its record ('f'ull, 'F'irst, 'm'iddle,
// 'l'ast); ok is false for an invalid encoding and the legacy ones, which
// carry no log number (pebble writes none of those since format 13).
func chunkEncoding(e byte) (header int, pos byte, ok bool) {
	switch {
	case e >= 5 && e <= 8:
		return 11, "fFml"[e-5], true
	case e >= 9 && e <= 12:
		return 19, "fFml"[e-9], true
	}
	return 0, 0, false
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is pebble's chunk checksum.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// chunk is a valid chunk of a log: its header's offset and its payload.
type chunk struct {
	off  int64
	pos  byte
	data []byte
}

// parseChunk reads the chunk whose header is at b[i:] in a log numbered
// num. eof is true for the trailer pebble writes when it closes a log.
func parseChunk(b []byte, i int, num uint32) (c chunk, eof, ok bool) {
	if i+legacyHeader > len(b) {
		return c, false, false
	}
	header, pos, ok := chunkEncoding(b[i+6])
	if !ok || i+header > len(b) {
		return c, false, false
	}
	length := int(binary.LittleEndian.Uint16(b[i+4:]))
	end := i + header + length
	if end > len(b) || (i/logBlockSize) != ((end-1)/logBlockSize) && length > 0 {
		return c, false, false
	}
	// The trailer carries the next log number, and no checksum.
	switch n := binary.LittleEndian.Uint32(b[i+7:]); {
	case n == num+1:
		return c, true, true
	case n != num || binary.LittleEndian.Uint32(b[i:]) != maskedCRC(b[i+6:end]):
		return c, false, false
	}
	return chunk{off: int64(i), pos: pos, data: b[i+header : end]}, false, true
}

// logDamage is where the newest log stops reading back whole, and what
// valid records of it follow.
type logDamage struct {
	path      string
	off       int64    // where the first record that does not read back starts
	records   int      // whole records after it
	partial   int      // chunks after it that make no whole record
	sessions  []string // ids of the sessions those records write
	apiKeys   int      // API key writes among them
	damagedIn []string // sessions the damaged record seems to hold (its checksum fails)
}

func (d *logDamage) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the newest log %s is damaged at offset %d: the record there fails its checksum", d.path, d.off)
	if d.records == 0 && d.partial == 0 {
		b.WriteString(" though it was written whole (not a write cut short by a crash), and it is the last one")
	} else {
		fmt.Fprintf(&b, ", and %d valid records of acknowledged writes follow it", d.records)
	}
	if d.partial > 0 {
		fmt.Fprintf(&b, " (and %d pieces of records)", d.partial)
	}
	if len(d.sessions) > 0 {
		fmt.Fprintf(&b, ", writing sessions %s", strings.Join(d.sessions, ", "))
	}
	if d.apiKeys > 0 {
		fmt.Fprintf(&b, " and %d API key changes", d.apiKeys)
	}
	if len(d.damagedIn) > 0 {
		fmt.Fprintf(&b, "; the damaged record seems to write sessions %s", strings.Join(d.damagedIn, ", "))
	}
	fmt.Fprintf(&b, ". Replaying the log would drop acknowledged writes silently, so the store does not open. "+
		"To recover: restore the data directory from a backup; or, accepting the loss of those writes, "+
		"keep a copy of the log and cut it at the damage (cp %s %s.damaged && truncate -s %d %s), then start again",
		d.path, d.path, d.off, d.path)
	return b.String()
}

// checkNewestLog reads the newest log in dir (pebble's directory) and
// returns a *logDamage if a record that does not read back is followed by
// valid records of the same log; nil for a clean or torn tail.
func checkNewestLog(fs vfs.FS, dir string, log *slog.Logger) error {
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	var newest string
	var num wal.NumWAL
	for _, name := range names {
		if n, idx, ok := wal.ParseLogFilename(name); ok && idx == 0 && (newest == "" || n > num) {
			newest, num = name, n
		}
	}
	if newest == "" {
		return nil
	}
	path := filepath.Join(dir, newest)
	f, err := fs.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// Read at once (the log is at most some tens of megabytes, and pebble
	// reads it again right after).
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	off, bad, ok := replayEnd(b, uint32(num))
	if ok {
		return nil
	}
	d := &logDamage{path: path, off: off}
	// The damaged record may still name what it held.
	if h, _, ok := chunkEncoding(b[bad+6]); ok && bad+h < len(b) {
		l := int(binary.LittleEndian.Uint16(b[bad+4:]))
		d.damagedIn, _ = batchSessions(b[bad+h : min(len(b), bad+h+l)])
	}
	// Valid chunks of this log after the damage: a record starts at each
	// full or first one.
	var rec []byte
	inRecord := false
	for i := bad + 1; i+legacyHeader <= len(b); i++ {
		c, eof, ok := parseChunk(b, i, uint32(num))
		if !ok || eof {
			continue
		}
		i = int(c.off) + chunkHeader(b[c.off+6]) + len(c.data) - 1 // the loop adds one
		switch c.pos {
		case 'f':
			d.addRecord(c.data)
			inRecord = false
		case 'F':
			rec, inRecord = append(rec[:0], c.data...), true
		case 'm', 'l':
			if !inRecord {
				d.partial++
				break
			}
			rec = append(rec, c.data...)
			if c.pos == 'l' {
				d.addRecord(rec)
				inRecord = false
			}
		}
	}
	if d.records == 0 && d.partial == 0 && torn(b, bad, uint32(num)) {
		if bad < len(b) && !allZero(b[bad:min(len(b), bad+legacyHeader)]) {
			log.Warn("embedded store: the newest log ends with a torn write, which was never acknowledged; replay stops before it",
				"log", path, "offset", off)
		}
		return nil
	}
	slices.Sort(d.sessions)
	d.sessions = slices.Compact(d.sessions)
	return d
}

// replayEnd reads the records of log num from b as pebble's replay does,
// and returns the offset of the first that does not read back whole and
// the offset of its bad chunk; ok if every record reads back up to the
// end, the log's trailer or zeros.
func replayEnd(b []byte, num uint32) (start int64, bad int, ok bool) {
	i, inRecord := 0, false
	for i+legacyHeader <= len(b) {
		// The writer pads a block's tail that cannot hold a header.
		if rest := logBlockSize - i%logBlockSize; rest < walSyncHeader && allZero(b[i:min(len(b), i+rest)]) {
			i += rest
			continue
		}
		if !inRecord {
			start = int64(i)
		}
		if allZero(b[i : i+legacyHeader]) {
			if inRecord {
				return start, i, false
			}
			// Pebble skips a zeroed block tail and ends at zeros
			// elsewhere; a later valid chunk is found by the caller.
			return start, i, !hasChunkAfter(b, i, num)
		}
		c, eof, valid := parseChunk(b, i, num)
		if !valid {
			return start, i, false
		}
		if eof {
			return start, i, !inRecord
		}
		switch c.pos {
		case 'f':
			if inRecord {
				return start, i, false
			}
		case 'F':
			if inRecord {
				return start, i, false
			}
			inRecord = true
		case 'm':
			if !inRecord {
				return start, i, false
			}
		case 'l':
			if !inRecord {
				return start, i, false
			}
			inRecord = false
		}
		i += chunkHeader(b[i+6]) + len(c.data)
	}
	return start, i, !inRecord
}

func chunkHeader(e byte) int {
	h, _, _ := chunkEncoding(e)
	return h
}

// torn reports whether the chunk at b[i:] of log num looks cut short by a
// crash rather than damaged: its header is zeros (nothing of it was
// written) or one of another log (the old content of a recycled log), or
// its payload ends in zeros from a page boundary on, or past the end of
// the file (a write cut at a page, in a log zeroed ahead). A chunk written
// whole whose checksum fails (a flipped byte) is not torn.
func torn(b []byte, i int, num uint32) bool {
	if i+legacyHeader > len(b) || allZero(b[i:i+legacyHeader]) {
		return true
	}
	header, _, ok := chunkEncoding(b[i+6])
	if !ok || i+header > len(b) {
		return !ok && i+header > len(b)
	}
	if n := binary.LittleEndian.Uint32(b[i+7:]); n != num && n != num+1 {
		return true
	}
	end := i + header + int(binary.LittleEndian.Uint16(b[i+4:]))
	if end > len(b) {
		return true
	}
	const page = 4096
	for q := (i/page + 1) * page; q < end; q += page {
		if allZero(b[q:end]) {
			return true
		}
	}
	return false
}

// hasChunkAfter reports whether a valid chunk of log num starts after i.
func hasChunkAfter(b []byte, i int, num uint32) bool {
	for j := i + 1; j+legacyHeader <= len(b); j++ {
		if _, eof, ok := parseChunk(b, j, num); ok && !eof {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// addRecord counts a whole record found after the damage and notes the
// sessions it writes.
func (d *logDamage) addRecord(rec []byte) {
	ids, keys := batchSessions(rec)
	if len(ids) == 0 && keys == 0 && len(rec) <= batchHeaderLen {
		return // a record that writes nothing
	}
	d.records++
	d.sessions = append(d.sessions, ids...)
	d.apiKeys += keys
}

const batchHeaderLen = 12

// batchSessions returns the ids of the sessions a batch writes and how
// many API key keys it writes, as far as it decodes.
func batchSessions(repr []byte) (ids []string, apiKeys int) {
	if len(repr) < batchHeaderLen {
		return nil, 0
	}
	r := batchrepr.Read(repr)
	for {
		_, ukey, _, ok, err := r.Next()
		if !ok || err != nil {
			return ids, apiKeys
		}
		switch {
		case len(ukey) > 1 && ukey[0] == kindSession:
			ids = append(ids, string(ukey[1:]))
		case len(ukey) > 1 && ukey[0] == kindAPIKey:
			apiKeys++
		}
	}
}
