//go:build podonly

package launch

import (
	"context"
	"errors"
)

// JobMode says whether this binary can run job-mode (serverless) launches: this
// podonly build leaves the relay, and with it gRPC, out.
const JobMode = false

func (l *Launcher) runJobs(context.Context, string) error {
	return errors.New("this run binary was built without job mode (tag podonly); use bin/run")
}
