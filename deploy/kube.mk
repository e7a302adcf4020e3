# Kubernetes targets (included by the Makefile). They need docker and kind on the machine (each
# says so clearly when one is missing); helm, and kubectl when the machine has none, are built
# into .tools/bin from their pinned Go modules on first use (scripts/setup.sh helm / kube).
CLUSTER ?= superstock
NAMESPACE ?= superstock
RELEASE ?= superstock
CHART := deploy/helm/superstock
# The chart's default image is superstock:<appVersion>: build and load exactly that, so an install
# without --set image.* (a user's own `helm install`) finds it in the nodes too.
CHART_APP_VERSION := $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' $(CHART)/Chart.yaml)
IMAGE ?= superstock:$(CHART_APP_VERSION)
# Every kubectl and helm call names the kind cluster's context (kind calls it kind-<cluster>), so
# no target ever acts on whatever context happens to be current — a real cluster, say.
KUBE_CONTEXT ?= kind-$(CLUSTER)
KUBECTL = kubectl --context $(KUBE_CONTEXT)
HELM = helm --kube-context $(KUBE_CONTEXT)
# helm waits for the pods to be Ready (the tests, with no kubelet, set it empty).
HELM_WAIT ?= --wait --timeout 5m

.PHONY: kind-up kind-load kind-down chart-lint kind-siege monitoring-up k6
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
	@$(MAKE) --no-print-directory kind-load
	$(HELM) upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) $(HELM_WAIT)
	@$(KUBECTL) -n $(NAMESPACE) get pods -o wide

# `kind load docker-image` fails with Docker's containerd image store (a known kind issue); an
# archive from `docker save` loads either way. kind reads the archive once per node, so it goes
# through a file, not a pipe.
kind-load: ## load $(IMAGE) into the kind nodes (falls back to docker save + kind load image-archive)
	$(call need,docker kind)
	@kind load docker-image $(IMAGE) --name $(CLUSTER) || { \
	  echo "kind load docker-image failed: loading an archive from docker save instead" >&2; \
	  archive=$$(mktemp "$${TMPDIR:-/tmp}/superstock-image.XXXXXX") && trap 'rm -f "$$archive"' EXIT && \
	  docker save -o "$$archive" $(IMAGE) && kind load image-archive "$$archive" --name $(CLUSTER); }

kind-down: ## delete the kind cluster
	$(call need,kind)
	kind delete cluster --name $(CLUSTER)

chart-lint: ## helm lint --strict and a render of the chart
	$(call need,helm)
	helm lint --strict $(CHART)
	helm template $(RELEASE) $(CHART) >/dev/null

kind-siege: ## the original's siege commands through a port-forward to the cluster
	$(call need,kubectl siege curl)
	@$(KUBECTL) -n $(NAMESPACE) port-forward svc/$(RELEASE) 5059:5059 >/dev/null & pf=$$!; trap "kill $$pf" EXIT; \
	for try in $$(seq 60); do curl -sf -o /dev/null localhost:5059/healthz && break; kill -0 $$pf 2>/dev/null || exit 1; sleep 0.5; done; \
	for path in Db Cache/Atomic Cache/Signal Cache/Lock; do \
	  siege -c5 -t2s -b "http://localhost:5059/api/v1/OneStock/$$path/Buy POST" 2>&1 | grep -E '"(transactions|availability)"'; \
	done

monitoring-up: ## kube-prometheus-stack, with the Grafana sidecar picking up the dashboard ConfigMap
	$(call need,kubectl helm)
	helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
	$(HELM) upgrade --install monitoring prometheus-community/kube-prometheus-stack --namespace monitoring --create-namespace \
	  --set grafana.sidecar.dashboards.enabled=true --set grafana.sidecar.dashboards.searchNamespace=ALL \
	  --set prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false \
	  --set prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false $(HELM_WAIT)
	$(HELM) upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --reuse-values $(HELM_WAIT)

k6: ## run k6/$(K6_SCRIPT) in the cluster as a Job beside the release, stream its logs, exit with k6's code
	$(call need,kubectl helm)
	@KUBE_CONTEXT=$(KUBE_CONTEXT) NAMESPACE=$(NAMESPACE) RELEASE=$(RELEASE) CHART=$(CHART) K6_SCRIPT=$(K6_SCRIPT) scripts/k6-job.sh
