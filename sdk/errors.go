package sdk

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// wireError is an error that came back from a plugin: its text is the
// plugin's message and it unwraps to the sentinel named by the gRPC code.
type wireError struct {
	msg  string
	kind error
}

func (e *wireError) Error() string { return e.msg }
func (e *wireError) Unwrap() error { return e.kind }

// codeFor maps a plugin-side error to the gRPC code that carries it.
func codeFor(err error) codes.Code {
	switch {
	case errors.Is(err, ErrNotFound):
		return codes.NotFound
	case errors.Is(err, ErrUnsupported):
		return codes.Unimplemented
	case errors.Is(err, ErrInvalid):
		return codes.InvalidArgument
	case errors.Is(err, ErrExists):
		return codes.AlreadyExists
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Unknown
}

// toStatus turns an error returned by a plugin implementation into a gRPC
// status error that keeps its message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	return status.Error(codeFor(err), err.Error())
}

// fromStatus turns a gRPC status error received by a client adapter back
// into an error that errors.Is matches against the sdk sentinels (and the
// context errors); a plain plugin error (code Unknown) becomes an error with
// just the plugin's message. Transport failures (Unavailable, Internal...)
// and non-status errors are returned unchanged.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	se, ok := err.(interface{ GRPCStatus() *status.Status })
	if !ok {
		return err
	}
	st := se.GRPCStatus()
	var kind error
	switch st.Code() {
	case codes.NotFound:
		kind = ErrNotFound
	case codes.Unimplemented:
		kind = ErrUnsupported
	case codes.InvalidArgument:
		kind = ErrInvalid
	case codes.AlreadyExists:
		kind = ErrExists
	case codes.Canceled:
		kind = context.Canceled
	case codes.DeadlineExceeded:
		kind = context.DeadlineExceeded
	case codes.Unknown:
		// A plain error from the plugin: keep its message, drop the gRPC framing.
	default:
		return err
	}
	return &wireError{msg: st.Message(), kind: kind}
}
