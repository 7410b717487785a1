// The wire types live in wire.d.ts (generated); this module exists so that `import('./wire.js')`
// resolves for the type checker and a bundler alike. It has no runtime content.
export {};
