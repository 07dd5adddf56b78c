package io.distserve.engine.tokenizer.jinja;

import com.hubspot.jinjava.el.ext.AstRangeBracket;
import com.hubspot.jinjava.el.ext.ExtendedParser;
import com.hubspot.jinjava.el.ext.NamedParameterOperator;
import java.util.ArrayList;
import java.util.List;
import jinjava.de.odysseus.el.tree.impl.Builder;
import jinjava.de.odysseus.el.tree.impl.Scanner;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.de.odysseus.el.tree.impl.ast.AstParameters;

/**
 * Jinjava's expression parser with the two pieces of Jinja2 syntax that Hugging Face chat templates use and
 * Jinjava parses differently:
 * <ul>
 *   <li>slices with a step, {@code messages[::-1]} (Jinjava knows only {@code [a:b]});</li>
 *   <li>keyword arguments whose value is a whole expression, {@code namespace(i=messages|length - 1)}: Jinjava
 *   treats {@code =} as an additive-level operator, so it parses {@code (i=messages|length) - 1}; here a keyword
 *   argument is recognised as {@code NAME '=' expression} at the start of an argument, as in Jinja2's grammar.</li>
 * </ul>
 */
final class PythonSyntaxParser extends ExtendedParser {

    PythonSyntaxParser(Builder context, String input) {
        super(context, input);
        putExtensionHandler(SliceAwareScanner.STEP_WITHOUT_STOP, new ExtensionHandler(ExtensionPoint.UNARY) {
            @Override
            public AstNode createAstNode(AstNode... children) {
                return new AstSliceStep(null, children[0]);
            }
        });
        putExtensionHandler(SliceAwareScanner.STEP_AFTER_STOP, new ExtensionHandler(ExtensionPoint.OR) {
            @Override
            public AstNode createAstNode(AstNode... children) {
                return new AstSliceStep(children[0], children[1]);
            }
        });
    }

    @Override
    protected Scanner createScanner(String expression) {
        return new SliceAwareScanner(expression);
    }

    @Override
    protected AstRangeBracket createAstRangeBracket(AstNode base, AstNode rangeStart, AstNode rangeMax,
                                                    boolean lvalue, boolean strict) {
        if (rangeMax instanceof AstSliceStep stepped) {
            return new AstSteppedSlice(base, rangeStart, stepped.stop(), stepped.step(), lvalue, strict,
                    context.isEnabled(Builder.Feature.IGNORE_RETURN_TYPE));
        }
        return super.createAstRangeBracket(base, rangeStart, rangeMax, lvalue, strict);
    }

    @Override
    protected AstParameters params(Scanner.Symbol left, Scanner.Symbol right)
            throws Scanner.ScanException, ParseException {
        consumeToken(left);
        List<AstNode> arguments = new ArrayList<>();
        AstNode argument = argument(false);
        if (argument != null) {
            arguments.add(argument);
            while (getToken().getSymbol() == Scanner.Symbol.COMMA) {
                consumeToken();
                arguments.add(argument(true));
            }
        }
        consumeToken(right);
        return createAstParameters(arguments);
    }

    private AstNode argument(boolean required) throws Scanner.ScanException, ParseException {
        if (getToken().getSymbol() == Scanner.Symbol.IDENTIFIER && lookahead(0) == NamedParameterOperator.TOKEN) {
            String name = consumeToken().getImage();
            consumeToken(); // '='
            return NamedParameterOperator.HANDLER.createAstNode(identifier(name), expr(true));
        }
        return expr(required);
    }
}
