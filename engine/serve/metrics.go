package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are what /metrics exposes; each Server has its own registry.
type metrics struct {
	reg            *prometheus.Registry
	alerts         *prometheus.CounterVec // by source and outcome
	requests       *prometheus.CounterVec // by endpoint and code
	incidents      *prometheus.CounterVec // by what became of a group
	steps          *prometheus.CounterVec // by action and result
	stepSeconds    *prometheus.HistogramVec
	firstAction    prometheus.Histogram
	decideSeconds  prometheus.Histogram
	acceptSeconds  prometheus.Histogram
	journalSync    prometheus.Histogram
	queueDepth     prometheus.Gauge
	reloads        *prometheus.CounterVec // by result
	journalRetries prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "firebreak_alerts_received_total",
		Help: "Alerts received, by source and outcome (accepted, rejected, unauthorized, overloaded, duplicate).",
	}, []string{"source", "outcome"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "firebreak_http_requests_total",
		Help: "HTTP requests by endpoint and status code.",
	}, []string{"endpoint", "code"})
	m.incidents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "firebreak_alert_groups_total",
		Help: "Alert groups handled, by what became of them (opened, joined, resolved, held, ignored, failed).",
	}, []string{"what"})
	m.steps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "firebreak_steps_total",
		Help: "Playbook steps finished, by action and result.",
	}, []string{"action", "result"})
	m.stepSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "firebreak_step_duration_seconds",
		Help:    "How long steps took, by action.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
	}, []string{"action"})
	m.firstAction = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "firebreak_first_action_latency_seconds",
		Help: "From the request that opened an incident to its first step starting: the engine's own latency.",
		// Fine buckets (×1.26, 0.5 ms to 30 s): a storm's p99 is read from them.
		Buckets: prometheus.ExponentialBucketsRange(0.0005, 30, 48),
	})
	m.decideSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "firebreak_decision_latency_seconds",
		Help:    "From an alert request's arrival to its alerts decided (opened, joined, resolved) in the incident log, steps not yet started.",
		Buckets: prometheus.ExponentialBucketsRange(0.0005, 30, 48),
	})
	m.acceptSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "firebreak_accept_duration_seconds",
		Help:    "From an alert request's arrival to its 2xx: decode, journal.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	m.journalSync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "firebreak_journal_sync_seconds",
		Help:    "Journal syncs, each making durable every request that arrived while the one before ran; a request's 2xx waits for up to two. Slow ones are the disk.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "firebreak_queue_depth",
		Help: "Accepted requests whose alerts are not yet recorded in the repository.",
	})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "firebreak_playbook_reloads_total",
		Help: "Playbook reloads, by result (ok, invalid, failed).",
	}, []string{"result"})
	m.journalRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "firebreak_journal_retries_total",
		Help: "Journal entries handled again after the repository could not record them.",
	})
	m.reg.MustRegister(m.alerts, m.requests, m.incidents, m.steps, m.stepSeconds, m.firstAction,
		m.decideSeconds, m.acceptSeconds, m.journalSync, m.queueDepth, m.reloads, m.journalRetries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
