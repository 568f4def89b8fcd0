package policysource

// Poll runs one tick of Run, so tests can check change detection without
// waiting on a ticker.
func (f *File) Poll() { f.poll() }
