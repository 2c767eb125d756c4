export { SHARED } from './corpus.js'
