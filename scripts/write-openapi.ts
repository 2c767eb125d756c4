// `npm run openapi:write`: regenerates openapi.yaml from the route schemas.
import { writeFile } from 'node:fs/promises'
import { generateOpenApiYaml } from './openapi-document.js'

await writeFile('openapi.yaml', await generateOpenApiYaml())
process.stdout.write('wrote openapi.yaml\n')
