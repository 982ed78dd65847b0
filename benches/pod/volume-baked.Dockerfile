# The image of benches/pod/volume-baked.yaml: demo/busybox.Dockerfile's busybox-static image with
# the volume benchmark's file at the path where volume.yaml mounts the artifact.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-m", "1777", "/tmp"]
COPY big.bin /mnt/oras/big.bin
ENV PATH=/bin
ENTRYPOINT ["/bin/sh"]
