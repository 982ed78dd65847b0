# A small image for the example steps: busybox-static and its applets, nothing else.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
# /tmp for the steps' scratch files (scratch has none).
RUN ["/bin/busybox", "mkdir", "-m", "1777", "/tmp"]
ENV PATH=/bin
ENTRYPOINT ["/bin/sh"]
