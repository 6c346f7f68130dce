package memory_test

import (
	"testing"

	"sessiond"
	"sessiond/store/memory"
	"sessiond/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Engine{New: func(t *testing.T) sessiond.Store { return memory.New() }})
}
