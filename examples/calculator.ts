/**
 * A small, safe arithmetic evaluator for the agents' calculator tool: numbers,
 * parentheses, `+ - * / %`, and powers written `^` or `**` (right-associative,
 * binding tighter than a unary minus: `-2^2` is -4). Nothing else is accepted,
 * so a model's input is never run as code.
 */

type Token = { kind: 'number', value: number } | { kind: 'operator', value: string }

const TOKEN_PATTERN = /\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|(\*\*|[-+*/%^()]))/y

function tokenize (expression: string): Token[] {
  const tokens: Token[] = []
  let position = 0
  while (position < expression.length) {
    if (/^\s*$/.test(expression.slice(position))) break
    TOKEN_PATTERN.lastIndex = position
    const match = TOKEN_PATTERN.exec(expression)
    if (match === null) throw new Error(`Unexpected character at position ${position} in ${JSON.stringify(expression)}`)
    if (match[1] !== undefined) tokens.push({ kind: 'number', value: Number(match[1]) })
    else tokens.push({ kind: 'operator', value: match[2]! })
    position = TOKEN_PATTERN.lastIndex
  }
  return tokens
}

/** Evaluates an arithmetic expression such as `25^0.43` or `(2 + 3) ** 2 / 5`. */
export function evaluateExpression (expression: string): number {
  const tokens = tokenize(expression)
  let index = 0

  const peek = (): Token | undefined => tokens[index]
  const takeOperator = (...operators: string[]): string | undefined => {
    const token = tokens[index]
    if (token?.kind === 'operator' && operators.includes(token.value)) {
      index++
      return token.value
    }
    return undefined
  }

  // sum := product (('+' | '-') product)*
  const parseSum = (): number => {
    let value = parseProduct()
    for (let operator = takeOperator('+', '-'); operator !== undefined; operator = takeOperator('+', '-')) {
      const right = parseProduct()
      value = operator === '+' ? value + right : value - right
    }
    return value
  }
  // product := unary (('*' | '/' | '%') unary)*
  const parseProduct = (): number => {
    let value = parseUnary()
    for (let operator = takeOperator('*', '/', '%'); operator !== undefined; operator = takeOperator('*', '/', '%')) {
      const right = parseUnary()
      value = operator === '*' ? value * right : operator === '/' ? value / right : value % right
    }
    return value
  }
  // unary := ('-' | '+') unary | power
  const parseUnary = (): number => {
    const sign = takeOperator('-', '+')
    if (sign !== undefined) return sign === '-' ? -parseUnary() : parseUnary()
    return parsePower()
  }
  // power := primary (('^' | '**') unary)?
  const parsePower = (): number => {
    const base = parsePrimary()
    if (takeOperator('^', '**') !== undefined) return base ** parseUnary()
    return base
  }
  // primary := number | '(' sum ')'
  const parsePrimary = (): number => {
    const token = peek()
    if (token?.kind === 'number') {
      index++
      return token.value
    }
    if (takeOperator('(') !== undefined) {
      const value = parseSum()
      if (takeOperator(')') === undefined) throw new Error(`Missing ")" in ${JSON.stringify(expression)}`)
      return value
    }
    throw new Error(token === undefined ? `Incomplete expression ${JSON.stringify(expression)}` : `Unexpected "${token.value}" in ${JSON.stringify(expression)}`)
  }

  const value = parseSum()
  const rest = peek()
  if (rest !== undefined) throw new Error(`Unexpected "${rest.value}" in ${JSON.stringify(expression)}`)
  if (!Number.isFinite(value)) throw new Error(`${JSON.stringify(expression)} is not a finite number`)
  return value
}
