package store

// Stats is what a store counts about its own contents, for the control
// plane's metrics.
type Stats struct {
	// DamagedProposals is how many distinct proposal records were found
	// damaged (not decodable, or not the proposal their key names) since
	// the store was opened. Listing, counting open ones and pruning skip
	// them; reading or deciding one by its id fails with the store's
	// ErrCorrupt. They are kept for an operator to inspect.
	DamagedProposals uint64
}
