#!/usr/bin/env python3
"""Writes the demo's cluster inventory: pods for the generated capture's clients (10.x.y.2), four
Deployments in two namespaces, as `kubectl get pods,replicasets -A -o yaml` would print them."""
import sys

APPS = [("shop", "web"), ("shop", "cart"), ("payments", "api"), ("payments", "worker")]
out = ["apiVersion: v1", "kind: List", "items:"]
for ns, app in APPS:
    out += [
        "- apiVersion: apps/v1",
        "  kind: ReplicaSet",
        "  metadata:",
        f"    name: {app}-7d4b9c",
        f"    namespace: {ns}",
        "    creationTimestamp: '2023-11-13T00:00:00Z'",
        f"    uid: rs-{app}",
        "    ownerReferences:",
        f"    - {{apiVersion: apps/v1, kind: Deployment, name: {app}, uid: dep-{app}, controller: true}}",
    ]
for c in range(512):
    ns, app = APPS[c % 4]
    ip = f"10.{1 + (c >> 8)}.{c & 255}.2"
    out += [
        "- apiVersion: v1",
        "  kind: Pod",
        "  metadata:",
        f"    name: {app}-7d4b9c-{c:05x}",
        f"    namespace: {ns}",
        f"    uid: pod-{c}",
        "    creationTimestamp: '2023-11-13T00:00:00Z'",
        f"    labels: {{app.kubernetes.io/name: {app}}}",
        "    ownerReferences:",
        f"    - {{apiVersion: apps/v1, kind: ReplicaSet, name: {app}-7d4b9c, uid: rs-{app}, controller: true}}",
        f"  spec: {{nodeName: node-{'ab'[c % 2]}}}",
        f"  status: {{phase: Running, podIP: '{ip}', podIPs: [{{ip: '{ip}'}}], startTime: '2023-11-13T00:00:01Z'}}",
    ]
with open(sys.argv[1], "w") as f:
    f.write("\n".join(out) + "\n")
