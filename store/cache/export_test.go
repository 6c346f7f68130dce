package cache

// CopySession is copySession, for the tests and benchmarks.
var CopySession = copySession

// TokenLen returns the number of entries in the token index.
func (s *Store) TokenLen() int {
	n := 0
	for i := range s.byToken {
		th := &s.byToken[i]
		th.mu.RLock()
		n += len(th.m)
		th.mu.RUnlock()
	}
	return n
}
