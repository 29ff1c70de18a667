//go:build !race

package match

// raceEnabled scales down the tests that run CUE by the hundred thousand:
// under the race detector CUE is several times slower.
const raceEnabled = false
