# An application image with no shell: one static program, started through its image ENTRYPOINT/CMD.
# The pod that runs it has no `command`, so the policy reads these from the image config, and the
# agent (a static binary) wraps it without needing a shell.
FROM scratch
COPY busybox /busybox
WORKDIR /data
ENTRYPOINT ["/busybox", "cp", "-r"]
CMD ["results", "copied"]
