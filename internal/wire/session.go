// Package wire holds the JSON documents that more than one API dialect
// speaks. Each dialect's own documents live in its own package.
package wire

import (
	"encoding/json"
	"time"

	"sessiond"
	"sessiond/internal/httpx"
)

// SessionV1 is the session document of the Pip.Services protocol (SPEC
// section 3), also returned by the JSON-RPC Session API. Null times are
// JSON null; user and data are any JSON value.
type SessionV1 struct {
	ID          string          `json:"id"`
	UserID      string          `json:"user_id"`
	UserName    string          `json:"user_name"`
	Active      bool            `json:"active"`
	OpenTime    httpx.Time      `json:"open_time"`
	RequestTime httpx.Time      `json:"request_time"`
	CloseTime   httpx.Time      `json:"close_time"`
	ExpireTime  httpx.Time      `json:"expire_time"`
	Address     string          `json:"address"`
	Client      string          `json:"client"`
	User        json.RawMessage `json:"user"`
	Data        json.RawMessage `json:"data"`
	APIKeyID    string          `json:"api_key_id,omitempty"`
}

var null = json.RawMessage("null")

// NewSessionV1 converts a session to its wire form.
func NewSessionV1(s *sessiond.Session) *SessionV1 {
	v := &SessionV1{
		ID:          s.ID,
		UserID:      s.UserID,
		UserName:    s.UserName,
		Active:      s.Active,
		OpenTime:    httpx.Time(s.OpenTime),
		RequestTime: httpx.Time(s.RequestTime),
		CloseTime:   httpx.Time(s.CloseTime),
		ExpireTime:  httpx.Time(s.ExpireTime),
		Address:     s.Address,
		Client:      s.Client,
		User:        s.User,
		Data:        s.Data,
		APIKeyID:    s.APIKeyID,
	}
	if v.User == nil {
		v.User = null
	}
	if v.Data == nil {
		v.Data = null
	}
	return v
}

// Seconds returns d in whole seconds, for expires_in fields.
func Seconds(d time.Duration) int64 { return int64(d / time.Second) }

// AppendJSON appends the document as JSON, byte for byte what
// encoding/json would write for it except that user and data are copied
// as stored (they were validated as JSON when they came in).
func (v *SessionV1) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = httpx.AppendString(b, v.ID)
	b = append(b, `,"user_id":`...)
	b = httpx.AppendString(b, v.UserID)
	b = append(b, `,"user_name":`...)
	b = httpx.AppendString(b, v.UserName)
	if v.Active {
		b = append(b, `,"active":true,"open_time":`...)
	} else {
		b = append(b, `,"active":false,"open_time":`...)
	}
	b = httpx.AppendTime(b, time.Time(v.OpenTime))
	b = append(b, `,"request_time":`...)
	b = httpx.AppendTime(b, time.Time(v.RequestTime))
	b = append(b, `,"close_time":`...)
	b = httpx.AppendTime(b, time.Time(v.CloseTime))
	b = append(b, `,"expire_time":`...)
	b = httpx.AppendTime(b, time.Time(v.ExpireTime))
	b = append(b, `,"address":`...)
	b = httpx.AppendString(b, v.Address)
	b = append(b, `,"client":`...)
	b = httpx.AppendString(b, v.Client)
	b = append(b, `,"user":`...)
	b = appendRaw(b, v.User)
	b = append(b, `,"data":`...)
	b = appendRaw(b, v.Data)
	if v.APIKeyID != "" {
		b = append(b, `,"api_key_id":`...)
		b = httpx.AppendString(b, v.APIKeyID)
	}
	return append(b, '}')
}

// MarshalJSON makes encoding/json use AppendJSON too.
func (v *SessionV1) MarshalJSON() ([]byte, error) { return v.AppendJSON(nil), nil }

func appendRaw(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	return append(b, raw...)
}
