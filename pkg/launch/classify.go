package launch

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// State is what one look at the chaincode's pod says about the launch.
type State int

// The states of a launch's pod.
const (
	Pending State = iota // not running yet; wait
	Started              // the container runs
	Failed               // it will not start: Err says why
	Exited               // the container ended: Err is an *ExitError
)

// Status is the verdict of classify.
type Status struct {
	State     State
	Scheduled bool   // the pod has a node
	Node      string // which
	Err       error  // for Failed and Exited
	// Message is the container's termination message, once it exited.
	Message string
}

// fatalWaiting reports container waiting reasons that will not fix themselves:
// failing now beats letting the peer wait out its launch timeout.
func fatalWaiting(reason string) bool {
	switch reason {
	case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
		"CreateContainerConfigError", "CreateContainerError", "RunContainerError":
		return true
	}
	return false
}

// ExitError is the chaincode's own exit.
type ExitError struct {
	Code   int
	Reason string
}

func (e *ExitError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("chaincode exited with code %d", e.Code)
	}
	return fmt.Sprintf("chaincode exited with code %d (%s)", e.Code, e.Reason)
}

// Classify decides from the pod alone whether its container is pending, started,
// failed to start (and why), or exited (and with which code).
func Classify(p *corev1.Pod, container string) Status {
	var s Status
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.PodScheduled {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			s.Scheduled, s.Node = true, p.Spec.NodeName
		} else if c.Reason == corev1.PodReasonUnschedulable && !strings.Contains(c.Message, "unbound immediate PersistentVolumeClaims") {
			// (A claim still binding is not a verdict: the scheduler retries once it is.)
			s.State, s.Err = Failed, fmt.Errorf("pod %s cannot be scheduled: %s: %s", p.Name, c.Reason, c.Message)
			return s
		}
	}
	for _, ic := range p.Status.InitContainerStatuses {
		switch {
		case ic.State.Waiting != nil && fatalWaiting(ic.State.Waiting.Reason):
			s.State, s.Err = Failed, fmt.Errorf("pod %s: init container %s: %s: %s", p.Name, ic.Name, ic.State.Waiting.Reason, ic.State.Waiting.Message)
			return s
		case ic.State.Terminated != nil && ic.State.Terminated.ExitCode != 0:
			t := ic.State.Terminated
			s.State, s.Err = Failed, fmt.Errorf("pod %s: init container %s exited with code %d: %s", p.Name, ic.Name, t.ExitCode, strings.TrimSpace(t.Reason+" "+t.Message))
			return s
		}
	}
	st := containerStatus(p, container)
	switch {
	case st == nil:
	case st.State.Waiting != nil && fatalWaiting(st.State.Waiting.Reason):
		s.State, s.Err = Failed, fmt.Errorf("pod %s: %s: %s", p.Name, st.State.Waiting.Reason, st.State.Waiting.Message)
		return s
	case st.State.Terminated != nil:
		t := st.State.Terminated
		s.State, s.Err = Exited, &ExitError{Code: int(t.ExitCode), Reason: strings.TrimSpace(t.Reason + " " + t.Message)}
		s.Message = t.Message
		return s
	case st.State.Running != nil:
		s.State = Started
		return s
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		s.State, s.Err = Failed, fmt.Errorf("pod %s: phase %s: %s", p.Name, p.Status.Phase, p.Status.Message)
	}
	return s
}

func containerStatus(p *corev1.Pod, container string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == container {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}
