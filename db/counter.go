package db

import "sync"

// queryCounter counts statements per method name.
type queryCounter struct {
	mu     sync.Mutex
	counts map[string]int64
}

func (q *queryCounter) add(name string) {
	q.mu.Lock()
	if q.counts == nil {
		q.counts = make(map[string]int64)
	}
	q.counts[name]++
	q.mu.Unlock()
}

func (q *queryCounter) snapshot() map[string]int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make(map[string]int64, len(q.counts))
	for k, v := range q.counts {
		out[k] = v
	}
	return out
}
