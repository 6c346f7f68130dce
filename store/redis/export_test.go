package redis

import "time"

// SetStrayMargin shortens how long an unused stray group is kept.
func SetStrayMargin(s *Store, d time.Duration) { s.strayMargin = d }
