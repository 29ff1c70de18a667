package stats

// Definitions explains every figure exactly as Compute computes it; the
// stats command's help quotes it.
const Definitions = `Figures are computed over the incidents kept: all of them, or with
--since DUR those whose opened time (detected time when opened is unset)
is at or after now minus DUR; an incident with neither time is then
left out.

Response times, each over the incidents that have both of its times set
with the later one not before the earlier one (clock skew); "n" is how
many that is:
  MTTD              time to detect: opened − detected, where detected is
                    the earliest startsAt of the incident's alerts
  MTTA              time to acknowledge: acknowledged − opened
  Time to mitigate  mitigated − opened
  MTTR              time to recover: resolved − detected

p50 and p90 are nearest-rank percentiles: the p-th percentile of n
durations is the smallest of them such that at least p% of the n are
less than or equal to it, that is the ceil(p×n/100)-th smallest. It is
always a recorded duration, never an interpolation; with n = 0 there is
none ("—", or null in JSON). JSON gives durations in seconds and rates
as fractions between 0 and 1.

By severity, by owner: how many incidents kept have each severity
(critical, high, warning, info, then others by name) and each owner
(most incidents first); "(none)" counts those with none.

Step success rate: succeeded ÷ (succeeded + failed), over every step
recorded in the incidents kept. Steps refused, skipped, waiting for
approval, planned (dry run) or of any other status count neither as
succeeded nor as failed: they are left out of both.

Automation rate: automated ÷ incidents kept, where an incident is
automated when its status is mitigated or resolved, it has at least one
step, every step's status is succeeded, and no step records an approval
(approved_by or approved_at). An incident still open, one with no steps,
one where a step needed a person's approval, and one where a step
failed, was refused, skipped or is waiting are all not automated.
`
