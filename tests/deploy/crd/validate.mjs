// Validate Kubernetes objects of Flux and Prometheus Operator kinds against their CRD schemas.
//
// Reads a JSON array of objects on stdin; writes a JSON array of {kind, name, error} (error is
// null when the object is valid). The schemas are the ones the @kubernetes-models packages compile
// from the controllers' API types (the same types the CRDs are generated from); an apiVersion or
// kind without a schema is an error, never a silent pass.
import { readFileSync } from "node:fs";

const PACKAGES = {
  "source.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "kustomize.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "image.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "helm.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "notification.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

async function validate(object) {
  const [group, version] = String(object.apiVersion ?? "").split("/");
  const pkg = PACKAGES[group];
  if (!pkg || !version) {
    return `no schema for apiVersion ${object.apiVersion}`;
  }
  let module;
  try {
    module = await import(`${pkg}/${group}/${version}`);
  } catch {
    return `no schema for apiVersion ${object.apiVersion}`;
  }
  const Model = module[object.kind];
  if (typeof Model !== "function") {
    return `no schema for ${object.kind} in ${object.apiVersion}`;
  }
  try {
    new Model(object).validate();
    return null;
  } catch (error) {
    return String(error.message ?? error);
  }
}

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const object of objects) {
  results.push({
    kind: object.kind ?? null,
    name: object.metadata?.name ?? null,
    error: await validate(object),
  });
}
process.stdout.write(JSON.stringify(results));
