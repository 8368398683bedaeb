// Package deploy holds what an operator deploys next to Edgeward, and the
// tests that keep it true to the daemon:
//
//   - metrics.golden: a scrape of `edgeward run` with every part enabled,
//     written by TestGoldenScrape in test/integration (-update);
//   - grafana/edgeward.json: a Grafana dashboard, data source ${DS_PROMETHEUS};
//   - prometheus/edgeward-alerts.yaml: Prometheus alert rules.
//
// The tests, run by make check without root, lint the golden scrape with
// promlint, refuse label names of unbounded cardinality, check that the
// README documents every family with its labels, and check that every
// metric, label and label value the dashboard and the alerts use exists in
// the golden scrape. They read PromQL with a small tokenizer (promql_test.go)
// rather than Prometheus' parser: it finds metric names and their label
// matchers but does not prove an expression valid.
package deploy
