package launch

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecc/kubecc/pkg/podspec"
)

func TestClassify(t *testing.T) {
	scheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}
	container := func(s corev1.ContainerState) []corev1.ContainerStatus {
		return []corev1.ContainerStatus{{Name: "sidecar"}, {Name: podspec.ContainerName, State: s}}
	}
	for _, tc := range []struct {
		name      string
		status    corev1.PodStatus
		state     State
		scheduled bool
		err       string
		code      int
	}{
		{name: "new", status: corev1.PodStatus{Phase: corev1.PodPending}, state: Pending},
		{name: "scheduled, pulling", status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{scheduled},
			ContainerStatuses: container(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}})}, state: Pending, scheduled: true},
		{name: "unschedulable", status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/1 nodes"}}},
			state: Failed, err: "cannot be scheduled: Unschedulable: 0/1 nodes"},
		{name: "claim still binding", status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
			Message: "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."}}}, state: Pending},
		{name: "pull error", status: corev1.PodStatus{Conditions: []corev1.PodCondition{scheduled},
			ContainerStatuses: container(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "back-off"}})}, state: Failed, scheduled: true, err: "ImagePullBackOff: back-off"},
		{name: "config error", status: corev1.PodStatus{ContainerStatuses: container(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: "secret not found"}})},
			state: Failed, err: "CreateContainerConfigError"},
		{name: "running", status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{scheduled},
			ContainerStatuses: container(corev1.ContainerState{Running: &corev1.ContainerStateRunning{}})}, state: Started, scheduled: true},
		{name: "exited", status: corev1.PodStatus{Phase: corev1.PodFailed,
			ContainerStatuses: container(corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}})}, state: Exited, code: 2, err: "code 2 (Error)"},
		{name: "evicted before start", status: corev1.PodStatus{Phase: corev1.PodFailed, Message: "node shutdown"}, state: Failed, err: "phase Failed: node shutdown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "cc-1"}, Spec: corev1.PodSpec{NodeName: "n1"}, Status: tc.status}
			st := Classify(pod, podspec.ContainerName)
			if st.State != tc.state || st.Scheduled != tc.scheduled {
				t.Fatalf("state %v scheduled %v, want %v %v", st.State, st.Scheduled, tc.state, tc.scheduled)
			}
			if tc.err == "" {
				if st.Err != nil {
					t.Fatalf("error %v", st.Err)
				}
				return
			}
			if st.Err == nil || !strings.Contains(st.Err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", st.Err, tc.err)
			}
			var exit *ExitError
			if tc.state == Exited && (!errors.As(st.Err, &exit) || exit.Code != tc.code) {
				t.Fatalf("exit %v, want code %d", st.Err, tc.code)
			}
		})
	}
}
