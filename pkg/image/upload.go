package image

import (
	"io"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Uploads counts what a push really sends of an image's own layers. The registry
// client asks the registry for each blob first and reads a layer only to upload it,
// so a layer the registry already holds (an unchanged node_modules layer, say) is
// never read: what is counted here is what went over the wire.
type Uploads struct {
	layers, bytes atomic.Int64
}

// Layers is how many layers were read for upload.
func (u *Uploads) Layers() int64 { return u.layers.Load() }

// Bytes is how many compressed bytes were read for upload.
func (u *Uploads) Bytes() int64 { return u.bytes.Load() }

// CountUploads wraps img so that reading a layer's compressed bytes is counted in
// the returned Uploads. Layers of a remote base are left as they are: the registry
// client mounts them from the base's repository only when it sees their type.
func CountUploads(img v1.Image) (v1.Image, *Uploads) {
	u := &Uploads{}
	return &countingImage{Image: img, u: u}, u
}

type countingImage struct {
	v1.Image
	u *Uploads
}

func (c *countingImage) Layers() ([]v1.Layer, error) {
	ls, err := c.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = c.wrap(l)
	}
	return out, nil
}

func (c *countingImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := c.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return c.wrap(l), nil
}

func (c *countingImage) wrap(l v1.Layer) v1.Layer {
	if _, remoteBase := l.(*remote.MountableLayer); remoteBase {
		return l
	}
	return &countingLayer{Layer: l, u: c.u}
}

type countingLayer struct {
	v1.Layer
	u *Uploads
}

func (c *countingLayer) Compressed() (io.ReadCloser, error) {
	rc, err := c.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	c.u.layers.Add(1)
	return &countingReader{ReadCloser: rc, u: c.u}, nil
}

type countingReader struct {
	io.ReadCloser
	u *Uploads
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.u.bytes.Add(int64(n))
	return n, err
}
