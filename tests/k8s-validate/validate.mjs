// Validates the prometheus-operator objects (ServiceMonitor, PrometheusRule) of a
// rendered kustomization against the operator's JSON schemas, offline. Reads YAML
// documents on stdin; exits 1 naming the first invalid object. Objects of other
// API groups are left to kubernetes-validate.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import { ServiceMonitor, PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const kinds = { ServiceMonitor, PrometheusRule };
const docs = yaml.loadAll(readFileSync(0, "utf8")).filter(Boolean);
let checked = 0;
for (const doc of docs) {
  if (!String(doc.apiVersion || "").startsWith("monitoring.coreos.com/")) continue;
  const Kind = kinds[doc.kind];
  if (!Kind) {
    console.error(`no schema for ${doc.apiVersion} ${doc.kind}`);
    process.exit(1);
  }
  try {
    new Kind(doc).validate();
  } catch (err) {
    console.error(`${doc.kind} ${doc.metadata?.name}: ${err.message}`);
    process.exit(1);
  }
  checked++;
}
console.log(`${checked} prometheus-operator objects valid`);
