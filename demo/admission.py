#!/usr/bin/env python3
"""Glue between Kubernetes manifests and kwrun for the demo and its tests.

  request  OBJ.yaml [--operation CREATE] [--namespace NS]   AdmissionRequest JSON, as `kwctl scaffold admission-request` writes it
  apply    OBJ.yaml RESPONSE.json                           the object after the response's JSON patch (YAML); exits 1 when rejected
  pod      OBJ.yaml NAME                                    the Pod podman runs for a Pod or a Job: the Job's pod template, host network
  session  OUT.yaml --cache NAME --namespace NS --address HOST:PORT [--lookups N] [--list] [--image REF=CONFIG.json]...
                                                            a kwctl host-capabilities session that answers the policy's lookups
"""
import argparse
import base64
import json
import sys
import uuid

import jsonpatch
import yaml

RESOURCES = {"Pod": ("", "v1", "pods"), "Job": ("batch", "v1", "jobs")}


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def cmd_request(args):
    obj = load(args.object)
    kind = obj["kind"]
    group, version, resource = RESOURCES[kind]
    namespace = obj.get("metadata", {}).get("namespace", args.namespace)
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    request = {
        "uid": str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": obj.get("metadata", {}).get("name", ""),
        "namespace": namespace,
        "operation": args.operation,
        "userInfo": {"username": "oras-cache-demo", "groups": ["system:authenticated"]},
        "object": obj,
    }
    json.dump(request, sys.stdout, indent=2)
    print()


def cmd_apply(args):
    obj = load(args.object)
    with open(args.response) as f:
        response = json.load(f)
    if not response.get("allowed"):
        message = (response.get("status") or {}).get("message", "")
        print(f"rejected: {message}", file=sys.stderr)
        sys.exit(1)
    for warning in response.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    if response.get("patch"):
        ops = json.loads(base64.b64decode(response["patch"]))
        obj = jsonpatch.apply_patch(obj, ops)
    yaml.safe_dump(obj, sys.stdout, sort_keys=False)


def cmd_pod(args):
    obj = load(args.object)
    if obj["kind"] == "Job":
        template = obj["spec"]["template"]
        meta = dict(template.get("metadata") or {})
        spec = dict(template["spec"])
    else:
        meta = dict(obj.get("metadata") or {})
        spec = dict(obj["spec"])
    meta["name"] = args.name
    meta.pop("namespace", None)
    # podman kube play (4.x) backs an emptyDir with a named volume called after the volume, which
    # the next pod with a volume of that name would share; a cluster gives every pod a fresh one.
    # Name each after its pod so pods stay apart as they would in a cluster.
    renamed = {}
    for volume in spec.get("volumes") or []:
        if "emptyDir" in volume:
            renamed[volume["name"]] = f"{args.name}-{volume['name']}"
            volume["name"] = renamed[volume["name"]]
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            for mount in container.get("volumeMounts") or []:
                mount["name"] = renamed.get(mount["name"], mount["name"])
    # The registry listens on loopback: the pod shares the host's network, as it would reach a
    # Service in a cluster.
    spec["hostNetwork"] = True
    spec.setdefault("restartPolicy", "Never")
    yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec},
                   sys.stdout, sort_keys=False)


def yaml_request(tag, fields):
    # kwctl stores each request as the YAML of its CallbackRequestType, tag first.
    body = yaml.safe_dump(fields, sort_keys=False, default_flow_style=False).rstrip("\n")
    return f"!{tag}\n{body}"


def cmd_session(args):
    cache = {
        "apiVersion": "cache.converged-computing.github.io/v1alpha1",
        "kind": "OrasCache",
        "metadata": {"name": args.cache, "namespace": args.namespace},
        "spec": {"image": "ghcr.io/oras-project/registry:latest", "deploy": True},
        "status": {
            "address": args.address,
            "plainHttp": True,
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True", "reason": "RegistryReady",
                            "message": "registry pods are ready",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        },
    }
    exchanges = []
    for _ in range(args.lookups):
        exchanges.append({
            "type": "Exchange",
            "request": yaml_request("KubernetesGetResource", {
                "api_version": "cache.converged-computing.github.io/v1alpha1",
                "kind": "OrasCache",
                "name": args.cache,
                "namespace": args.namespace,
                "disable_cache": False,
            }),
            "response": {"type": "Success", "payload": json.dumps(cache)},
        })
    if args.list:
        # The policy lists the namespace's OrasCaches to find mirrors of the registries it pulls
        # from (after any get_resource, before any image config).
        listing = {"apiVersion": "cache.converged-computing.github.io/v1alpha1",
                   "kind": "OrasCacheList", "metadata": {"resourceVersion": "1"}, "items": [cache]}
        exchanges.append({
            "type": "Exchange",
            "request": yaml_request("KubernetesListResourceNamespace", {
                "api_version": "cache.converged-computing.github.io/v1alpha1",
                "kind": "OrasCache",
                "namespace": args.namespace,
                "label_selector": None,
                "field_selector": None,
            }),
            "response": {"type": "Success", "payload": json.dumps(listing)},
        })
    for spec in args.image or []:
        ref, config_path = spec.split("=", 1)
        with open(config_path) as f:
            response = json.load(f)
        exchanges.append({
            "type": "Exchange",
            "request": yaml_request("OciManifestAndConfig", {"image": ref}),
            "response": {"type": "Success", "payload": json.dumps(response)},
        })
    with open(args.out, "w") as f:
        yaml.safe_dump(exchanges, f, sort_keys=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("request")
    p.add_argument("object")
    p.add_argument("--operation", default="CREATE")
    p.add_argument("--namespace", default="default")
    p.set_defaults(func=cmd_request)
    p = sub.add_parser("apply")
    p.add_argument("object")
    p.add_argument("response")
    p.set_defaults(func=cmd_apply)
    p = sub.add_parser("pod")
    p.add_argument("object")
    p.add_argument("name")
    p.set_defaults(func=cmd_pod)
    p = sub.add_parser("session")
    p.add_argument("out")
    p.add_argument("--cache", required=True)
    p.add_argument("--namespace", default="default")
    p.add_argument("--address", required=True)
    p.add_argument("--lookups", type=int, default=1)
    p.add_argument("--list", action="store_true", help="answer one list of the namespace's OrasCaches")
    p.add_argument("--image", action="append")
    p.set_defaults(func=cmd_session)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
