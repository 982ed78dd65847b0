//! Kubewarden mutating policy that injects the oras-cache artifact agent into annotated Pods and Jobs
