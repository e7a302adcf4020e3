# Kubernetes targets (included by the Makefile). They need docker and kind on the machine (each
# says so clearly when one is missing); helm, and kubectl when the machine has none, are built
# into .tools/bin from their pinned Go modules on first use (scripts/setup.sh helm / kube).
CLUSTER ?= superstock
NAMESPACE ?= superstock
RELEASE ?= superstock
IMAGE ?= superstock:dev
CHART := deploy/helm/superstock

.PHONY: kind-up kind-down chart-lint kind-siege monitoring-up k6
K6_SCRIPT ?= many-stock.ts

define need
	@for tool in $(filter-out helm kubectl,$(1)); do command -v $$tool >/dev/null || { echo "$$tool is not installed: it is needed for this target" >&2; exit 1; }; done
	$(if $(filter helm,$(1)),@bash scripts/setup.sh helm)
	$(if $(filter kubectl,$(1)),@command -v kubectl >/dev/null || bash scripts/setup.sh kube)
endef

kind-up: ## create the kind cluster, build and load the image, install the chart (3 replicas + MongoDB + Redis)
	$(call need,docker kind kubectl helm)
	@kind get clusters | grep -qx $(CLUSTER) || kind create cluster --config deploy/kind/kind-config.yaml --name $(CLUSTER)
	docker build -t $(IMAGE) .
	kind load docker-image $(IMAGE) --name $(CLUSTER)
	helm upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) --wait --timeout 5m
	@kubectl -n $(NAMESPACE) get pods -o wide

kind-down: ## delete the kind cluster
	$(call need,kind)
	kind delete cluster --name $(CLUSTER)

chart-lint: ## helm lint --strict and a render of the chart
	$(call need,helm)
	helm lint --strict $(CHART)
	helm template $(RELEASE) $(CHART) >/dev/null

kind-siege: ## the original's siege commands through a port-forward to the cluster
	$(call need,kubectl siege)
	@kubectl -n $(NAMESPACE) port-forward svc/$(RELEASE) 5059:5059 >/dev/null & pf=$$!; trap "kill $$pf" EXIT; sleep 2; \
	for path in Db Cache/Atomic Cache/Signal Cache/Lock; do \
	  siege -c5 -t2s -b "http://localhost:5059/api/v1/OneStock/$$path/Buy POST" 2>&1 | grep -E '"(transactions|availability)"'; \
	done

monitoring-up: ## kube-prometheus-stack, with the Grafana sidecar picking up the dashboard ConfigMap
	$(call need,kubectl helm)
	helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
	helm upgrade --install monitoring prometheus-community/kube-prometheus-stack --namespace monitoring --create-namespace \
	  --set grafana.sidecar.dashboards.enabled=true --set grafana.sidecar.dashboards.searchNamespace=ALL \
	  --set prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false \
	  --set prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false --wait
	helm upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --reuse-values --wait

k6: ## run k6/$(K6_SCRIPT) in the cluster as a Job, stream its logs, exit with k6's code
	$(call need,kubectl helm)
	helm upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --reuse-values --set k6.enabled=true --set k6.script=$(K6_SCRIPT)
	@job=$$(kubectl -n $(NAMESPACE) get jobs -l app.kubernetes.io/component=k6 --sort-by=.metadata.creationTimestamp -o name | tail -1); \
	kubectl -n $(NAMESPACE) wait --for=condition=Ready pod -l job-name=$${job#job.batch/} --timeout=120s >/dev/null; \
	kubectl -n $(NAMESPACE) logs -f $$job; \
	kubectl -n $(NAMESPACE) wait --for=condition=Complete $$job --timeout=10s >/dev/null
