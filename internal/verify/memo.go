package verify

import "sync"

// Memo holds work shared by the verifications of one subject within one evaluation, such as
// the signatures fetched from a repository, so that attestors reading the same source fetch
// it once. Concurrent callers of the same key wait for the first. A nil *Memo memoizes nothing.
type Memo struct {
	mu    sync.Mutex
	calls map[string]*memoCall
}

type memoCall struct {
	done chan struct{}
	val  any
	err  error
}

// Do returns the result of fn for key, calling fn at most once per key.
func (m *Memo) Do(key string, fn func() (any, error)) (any, error) {
	if m == nil {
		return fn()
	}
	m.mu.Lock()
	if m.calls == nil {
		m.calls = map[string]*memoCall{}
	}
	if c, ok := m.calls[key]; ok {
		m.mu.Unlock()
		<-c.done
		return c.val, c.err
	}
	c := &memoCall{done: make(chan struct{})}
	m.calls[key] = c
	m.mu.Unlock()
	c.val, c.err = fn()
	close(c.done)
	return c.val, c.err
}
