package db

import (
	"bytes"
	"sync"
	"time"
)

// signInCacheLimit bounds the sign-in cache; rows larger than
// signInCacheMaxRow bytes (of key and id) are never kept, so it stays
// under about 10 MB whatever keys people register.
const (
	signInCacheLimit  = 4096
	signInCacheMaxRow = 2048
)

// signInCache keeps, per authenticator credential id, what a passkey
// sign-in reads: the credential row and its owner's handle. A sign-in that
// finds its credential here skips the read and goes straight to verifying
// the signature and to RecordCredentialUse.
//
// The cache is never the authority. RecordCredentialUse's single
// conditional update is: it matches the row by id, credential id, public
// key, live owner and backup-eligible flag — everything the sign-in took
// from the cache — so a deleted row, a reused row id, a credential id
// registered again (on any account, with any key) or a deleted account
// matches nothing; and it refuses a ceremony that is not newer than the
// last use and a counter that did not increase, against the row as it is
// now. A stale entry can therefore only make a sign-in fail. Any failure
// drops the entry, and the sign-in handler then tries once more against a
// fresh read, so a stale entry never decides the answer either.
type signInCache struct {
	mu sync.Mutex
	m  map[string]signInEntry
}

type signInEntry struct {
	cred   Credential
	handle []byte
}

func (s *signInCache) get(credentialID []byte) (*Credential, []byte, bool) {
	s.mu.Lock()
	e, ok := s.m[string(credentialID)]
	s.mu.Unlock()
	if !ok {
		return nil, nil, false
	}
	c := e.cred
	return &c, e.handle, true
}

func (s *signInCache) put(c *Credential, handle []byte) {
	if len(c.PublicKey)+len(c.CredentialID) > signInCacheMaxRow {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]signInEntry)
	}
	if len(s.m) >= signInCacheLimit {
		for k := range s.m { // an arbitrary entry: map order is random
			delete(s.m, k)
			break
		}
	}
	s.m[string(c.CredentialID)] = signInEntry{cred: *c, handle: handle}
}

// used records a successful use, as RecordCredentialUse wrote it.
func (s *signInCache) used(u UsedCredential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[string(u.CredentialID)]
	if !ok || e.cred.ID != u.ID || !bytes.Equal(e.cred.PublicKey, u.PublicKey) || !bytes.Equal(e.handle, u.Owner) {
		return // the entry is of another row now
	}
	e.cred.SignCount = u.SignCount
	e.cred.UserVerified = u.UserVerified
	e.cred.BackupState = u.BackupState
	e.cred.BackupEligible = u.NowEligible
	e.cred.LastUsedAt = time.UnixMicro(u.CeremonyStart)
	s.m[string(u.CredentialID)] = e
}

func (s *signInCache) forget(credentialID []byte) {
	s.mu.Lock()
	delete(s.m, string(credentialID))
	s.mu.Unlock()
}

// forgetWhere drops every entry drop says to (deletions, which are rare).
func (s *signInCache) forgetWhere(drop func(*signInEntry) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.m {
		if drop(&e) {
			delete(s.m, k)
		}
	}
}

func (s *signInCache) forgetRow(id int64) {
	s.forgetWhere(func(e *signInEntry) bool { return e.cred.ID == id })
}

func (s *signInCache) forgetOwner(handle []byte) {
	s.forgetWhere(func(e *signInEntry) bool { return bytes.Equal(e.handle, handle) })
}
