"""What deploy/ promises, checked on Kubernetes manifests (run by test_deploy.sh).

usage: deploy_check.py MANIFESTS.yaml...   (the files of a kustomization, or its build output)

Checks the bitnet Deployment (probes on /health, resources, a non-root read-only container
without privilege escalation and with every capability dropped, the serve arguments with
--tenants and --redis from the Secret, the Secret references of the Redis URL, the database URL
and the Stripe key), that the Service, HPA (on CPU), PodDisruptionBudget and NetworkPolicy
select its pods, and that the ConfigMap and the volume claim it mounts are there. Prints one
line per check; exits 1 at the first failure. Needs PyYAML."""
import json
import sys

import yaml


def check(cond, what):
    if not cond:
        print("FAIL " + what)
        sys.exit(1)
    print(what)


def main():
    docs = []
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    for k in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
              "ConfigMap", "NetworkPolicy", "PersistentVolumeClaim"):
        check(k in kinds, "a " + k)
    dep = [d for d in kinds["Deployment"] if d["metadata"]["name"].endswith("bitnet")][0]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    c = pod["containers"][0]
    check(c["readinessProbe"]["httpGet"]["path"] == "/health", "readiness on GET /health")
    check("livenessProbe" in c and "startupProbe" in c, "liveness and startup probes")
    r = c.get("resources", {})
    check(all(x in r.get("requests", {}) for x in ("cpu", "memory")) and
          "memory" in r.get("limits", {}), "resources: cpu and memory requests, a memory limit")
    sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True, "a read-only root file system")
    check(sc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    check("ALL" in sc.get("capabilities", {}).get("drop", []), "every capability dropped")
    check((sc.get("runAsNonRoot") or psc.get("runAsNonRoot")) is True and
          psc.get("runAsUser", sc.get("runAsUser", 0)) != 0, "runs as a user that is not root")
    args = c["args"]
    check(args[0] == "serve" and "--tenants" in args and "--redis" in args and
          args[args.index("--redis") + 1] == "$(BITNET_REDIS_URL)",
          "serve --tenants --redis $(BITNET_REDIS_URL)")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}
    check(refs.get("BITNET_REDIS_URL", {}).get("key") == "redis-url", "the Redis URL from a Secret")
    check(refs.get("BITNET_DATABASE", {}).get("key") == "database-url",
          "the database URL from a Secret")
    check(refs.get("STRIPE_SECRET_KEY", {}).get("key") == "stripe-secret-key",
          "the Stripe key from a Secret")
    names = {p.get("name") for p in c.get("ports", [])}

    def selects(sel):
        return bool(sel) and all(labels.get(k) == v for k, v in sel.items())

    svc = kinds["Service"][0] if len(kinds["Service"]) == 1 else \
        [s for s in kinds["Service"] if selects(s["spec"].get("selector"))][0]
    check(selects(svc["spec"]["selector"]) and
          all(p["targetPort"] in names for p in svc["spec"]["ports"]),
          "the Service selects the pods, on a port they name")
    hpa = kinds["HorizontalPodAutoscaler"][0]
    check(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"] and
          any(m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"]),
          "the HPA scales the Deployment on CPU")
    check(any(selects(p["spec"]["selector"]["matchLabels"]) for p in kinds["PodDisruptionBudget"]),
          "the PodDisruptionBudget selects the pods")
    nps = [n for n in kinds["NetworkPolicy"] if selects(n["spec"]["podSelector"]["matchLabels"])]
    check(nps and any(p.get("port") == 8080 for n in nps for i in n["spec"].get("ingress", [])
                      for p in i.get("ports", [])), "a NetworkPolicy lets in port 8080 only")
    cms = {m["metadata"]["name"]: m for m in kinds["ConfigMap"]}
    pvcs = {p["metadata"]["name"] for p in kinds["PersistentVolumeClaim"]}
    for v in pod["volumes"]:
        if "configMap" in v:
            check(v["configMap"]["name"] in cms, "the ConfigMap %s is there" % v["configMap"]["name"])
            json.loads(cms[v["configMap"]["name"]]["data"]["config.json"])
        if "persistentVolumeClaim" in v:
            check(v["persistentVolumeClaim"]["claimName"] in pvcs, "the volume claim is there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
